using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Isotun.Protocol.Tls;

/// <summary>
/// Reads a TLS ClientHello incrementally, as an SNI router must: the bytes arrive in arbitrary TCP segments, and
/// the handshake message may be split across several TLS records (both are reassembled, unlike HAProxy's
/// req.ssl_sni). Every byte fed is kept in <see cref="Buffered"/> so the caller can replay it to a backend
/// untouched. Bounded: at most <see cref="MaxBytes"/> bytes are ever held (64 KiB by default, as Envoy's
/// tls_inspector). Never throws on peer input; the only exceptions are for caller mistakes.
/// </summary>
public sealed class ClientHelloReader : IDisposable
{
    public const int DefaultMaxBytes = 64 * 1024;
    public const int RecordHeaderLength = 5;

    /// <summary>TLSPlaintext.length must not exceed 2^14 (RFC 8446 §5.1).</summary>
    public const int MaxRecordPayload = 16384;

    /// <summary>RFC 6066: a host_name is at most 255 bytes.</summary>
    public const int MaxHostNameLength = 255;

    private const byte HandshakeRecord = 0x16;
    private const byte ClientHelloType = 0x01;
    private const int HandshakeHeaderLength = 4;
    private const int InitialCapacity = 2048;
    private const ushort ServerNameExtension = 0x0000;

    private byte[] _raw;
    private int _rawLength;
    private int _recordOffset;
    private byte[] _handshake;
    private int _handshakeLength;
    private int _helloLength = -1;
    private bool _disposed;

    public ClientHelloReader(int maxBytes = DefaultMaxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 64);
        MaxBytes = maxBytes;
        _raw = ArrayPool<byte>.Shared.Rent(Math.Min(InitialCapacity, maxBytes));
        _handshake = ArrayPool<byte>.Shared.Rent(Math.Min(InitialCapacity, maxBytes));
    }

    public int MaxBytes { get; }

    /// <summary>The outcome so far; final once it is not <see cref="ClientHelloOutcome.NeedMore"/>.</summary>
    public ClientHelloOutcome Outcome { get; private set; } = ClientHelloOutcome.NeedMore;

    /// <summary>The host_name, lower-cased, without a trailing dot; set only with <see cref="ClientHelloOutcome.ServerName"/>.</summary>
    public string? ServerName { get; private set; }

    /// <summary>Every byte fed so far, in order (including any bytes after the ClientHello), for replay.</summary>
    public ReadOnlyMemory<byte> Buffered => _raw.AsMemory(0, _rawLength);

    /// <summary>How many more bytes may be fed before the bound is reached.</summary>
    public int Remaining => MaxBytes - _rawLength;

    /// <summary>
    /// Free space to read into (at most <see cref="Remaining"/> bytes, at least <paramref name="sizeHint"/> when that fits);
    /// empty when the bound is reached. Follow with <see cref="Advance"/>.
    /// </summary>
    public Memory<byte> GetMemory(int sizeHint = 4096)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int want = Math.Min(MaxBytes, _rawLength + Math.Max(1, sizeHint));
        if (_raw.Length < want)
        {
            _raw = Grow(_raw, _rawLength, want);
        }

        return _raw.AsMemory(_rawLength, Math.Min(_raw.Length, MaxBytes) - _rawLength);
    }

    /// <summary>Takes <paramref name="count"/> bytes written into the memory from <see cref="GetMemory"/>.</summary>
    public ClientHelloOutcome Advance(int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Math.Min(_raw.Length, MaxBytes) - _rawLength);
        if (Outcome != ClientHelloOutcome.NeedMore)
        {
            // Bytes after a final outcome are still kept for replay, but never parsed.
            _rawLength += count;
            return Outcome;
        }

        _rawLength += count;
        Outcome = Process();
        return Outcome;
    }

    /// <summary>Copies <paramref name="data"/> in and parses as far as it can. More than <see cref="Remaining"/> is a caller error.</summary>
    public ClientHelloOutcome Feed(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (data.Length > Remaining)
        {
            throw new ArgumentOutOfRangeException(nameof(data), "More bytes than the reader may hold; read at most Remaining bytes.");
        }

        while (!data.IsEmpty)
        {
            var memory = GetMemory(data.Length).Span;
            int n = Math.Min(memory.Length, data.Length);
            data[..n].CopyTo(memory);
            data = data[n..];
            Advance(n);
        }

        return Outcome;
    }

    private ClientHelloOutcome Process()
    {
        // Decide "not TLS" from the very first bytes, without waiting for a whole record header.
        if (_recordOffset == 0)
        {
            if (_rawLength >= 1 && _raw[0] != HandshakeRecord) return ClientHelloOutcome.NotTls;
            if (_rawLength >= 2 && _raw[1] != 0x03) return ClientHelloOutcome.NotTls;
        }

        while (_rawLength - _recordOffset >= RecordHeaderLength)
        {
            var header = _raw.AsSpan(_recordOffset, RecordHeaderLength);
            if (header[0] != HandshakeRecord || header[1] != 0x03)
            {
                // Another record type (alert, change_cipher_spec, data) before the hello is complete.
                return ClientHelloOutcome.Malformed;
            }

            int length = BinaryPrimitives.ReadUInt16BigEndian(header[3..]);
            if (length == 0 || length > MaxRecordPayload)
            {
                return ClientHelloOutcome.Malformed;
            }

            int end = _recordOffset + RecordHeaderLength + length;
            if (end > MaxBytes) return ClientHelloOutcome.TooLarge;
            if (_rawLength < end) break;

            var payload = _raw.AsSpan(_recordOffset + RecordHeaderLength, length);
            _recordOffset = end;
            var outcome = AppendHandshake(payload);
            if (outcome != ClientHelloOutcome.NeedMore) return outcome;
        }

        return _rawLength >= MaxBytes ? ClientHelloOutcome.TooLarge : ClientHelloOutcome.NeedMore;
    }

    private ClientHelloOutcome AppendHandshake(ReadOnlySpan<byte> payload)
    {
        if (_handshakeLength + payload.Length > MaxBytes) return ClientHelloOutcome.TooLarge;
        if (_handshake.Length < _handshakeLength + payload.Length)
        {
            _handshake = Grow(_handshake, _handshakeLength, _handshakeLength + payload.Length);
        }

        payload.CopyTo(_handshake.AsSpan(_handshakeLength));
        _handshakeLength += payload.Length;

        if (_helloLength < 0)
        {
            if (_handshake[0] != ClientHelloType) return ClientHelloOutcome.Malformed;
            if (_handshakeLength < HandshakeHeaderLength) return ClientHelloOutcome.NeedMore;
            int declared = (_handshake[1] << 16) | (_handshake[2] << 8) | _handshake[3];

            // The records carrying it add at least one header: refuse early what could never fit.
            if (HandshakeHeaderLength + declared + RecordHeaderLength > MaxBytes) return ClientHelloOutcome.TooLarge;
            _helloLength = declared;
        }

        int total = HandshakeHeaderLength + _helloLength;
        if (_handshakeLength < total) return ClientHelloOutcome.NeedMore;

        // Anything in the handshake stream after the ClientHello is not ours to judge; TLS will.
        var (outcome, name) = ParseClientHello(_handshake.AsSpan(HandshakeHeaderLength, _helloLength));
        ServerName = name;
        return outcome;
    }

    /// <summary>Parses a ClientHello body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) and its server_name (RFC 6066 §3).</summary>
    internal static (ClientHelloOutcome Outcome, string? ServerName) ParseClientHello(ReadOnlySpan<byte> body)
    {
        const ClientHelloOutcome bad = ClientHelloOutcome.Malformed;
        var r = new SpanReader(body);
        if (!r.TryRead(2, out var version) || version[0] != 0x03) return (bad, null);
        if (!r.Skip(32)) return (bad, null);
        if (!r.TryReadVector8(out var sessionId) || sessionId.Length > 32) return (bad, null);
        if (!r.TryReadVector16(out var suites) || suites.Length < 2 || suites.Length % 2 != 0) return (bad, null);
        if (!r.TryReadVector8(out var compression) || compression.Length < 1) return (bad, null);
        if (r.Remaining == 0) return (ClientHelloOutcome.NoServerName, null);

        if (!r.TryReadVector16(out var extensions) || r.Remaining != 0) return (bad, null);
        var e = new SpanReader(extensions);
        Span<ushort> seen = stackalloc ushort[128];
        int seenCount = 0;
        string? serverName = null;
        bool sawServerName = false;
        while (e.Remaining > 0)
        {
            if (!e.TryReadUInt16(out ushort type) || !e.TryReadVector16(out var data)) return (bad, null);
            if (seen[..seenCount].Contains(type)) return (bad, null);
            if (seenCount == seen.Length) return (bad, null);
            seen[seenCount++] = type;
            if (type != ServerNameExtension) continue;

            sawServerName = true;
            var outcome = ParseServerName(data, out serverName);
            if (outcome != ClientHelloOutcome.ServerName && outcome != ClientHelloOutcome.NoServerName) return (outcome, null);
        }

        return sawServerName && serverName is not null ? (ClientHelloOutcome.ServerName, serverName) : (ClientHelloOutcome.NoServerName, null);
    }

    private static ClientHelloOutcome ParseServerName(ReadOnlySpan<byte> data, out string? serverName)
    {
        serverName = null;
        var r = new SpanReader(data);
        if (!r.TryReadVector16(out var list) || r.Remaining != 0 || list.Length == 0) return ClientHelloOutcome.Malformed;
        var l = new SpanReader(list);
        while (l.Remaining > 0)
        {
            if (!l.TryRead(1, out var nameType) || !l.TryReadVector16(out var name)) return ClientHelloOutcome.Malformed;
            if (nameType[0] != 0) continue; // only host_name (0) is defined; others are skipped
            if (serverName is not null) return ClientHelloOutcome.Malformed; // at most one name per type
            serverName = NormalizeHostName(name);
            if (serverName is null) return ClientHelloOutcome.Malformed;
        }

        return serverName is null ? ClientHelloOutcome.NoServerName : ClientHelloOutcome.ServerName;
    }

    /// <summary>Lower-case ASCII letters, digits, '-', '_' and '.', labels 1-63 bytes, one trailing dot dropped; null otherwise.</summary>
    public static string? NormalizeHostName(ReadOnlySpan<byte> name)
    {
        if (name.Length > 0 && name[^1] == (byte)'.') name = name[..^1];
        if (name.Length is 0 or > MaxHostNameLength) return null;
        int label = 0;
        foreach (byte b in name)
        {
            if (b == (byte)'.')
            {
                if (label == 0) return null;
                label = 0;
                continue;
            }

            bool ok = b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
                or (byte)'-' or (byte)'_';
            if (!ok || ++label > 63) return null;
        }

        if (label == 0) return null;
        return Encoding.ASCII.GetString(name).ToLowerInvariant();
    }

    private static byte[] Grow(byte[] old, int used, int atLeast)
    {
        var fresh = ArrayPool<byte>.Shared.Rent(Math.Max(atLeast, old.Length * 2));
        old.AsSpan(0, used).CopyTo(fresh);
        ArrayPool<byte>.Shared.Return(old);
        return fresh;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ArrayPool<byte>.Shared.Return(_raw);
        ArrayPool<byte>.Shared.Return(_handshake);
        _raw = [];
        _handshake = [];
    }

    /// <summary>Bounds-checked reads over a span; every method returns false instead of reading past the end.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly int Remaining => _rest.Length;

        public bool TryRead(int count, out ReadOnlySpan<byte> value)
        {
            if (_rest.Length < count)
            {
                value = default;
                return false;
            }

            value = _rest[..count];
            _rest = _rest[count..];
            return true;
        }

        public bool Skip(int count) => TryRead(count, out _);

        public bool TryReadUInt16(out ushort value)
        {
            value = 0;
            if (!TryRead(2, out var b)) return false;
            value = BinaryPrimitives.ReadUInt16BigEndian(b);
            return true;
        }

        public bool TryReadVector8(out ReadOnlySpan<byte> value)
        {
            value = default;
            return TryRead(1, out var len) && TryRead(len[0], out value);
        }

        public bool TryReadVector16(out ReadOnlySpan<byte> value)
        {
            value = default;
            return TryReadUInt16(out ushort len) && TryRead(len, out value);
        }
    }
}
