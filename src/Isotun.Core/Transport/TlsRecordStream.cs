using System.Buffers;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Authentication;

namespace Isotun.Transport;

/// <summary>
/// A TLS 1.3 connection's records after its handshake, read and written on SslStream's own OpenSSL connection: the
/// same <c>SSL*</c> and memory BIOs SslStream uses, called directly (<c>SSL_write</c> then <c>BIO_read</c> to
/// encrypt, <c>BIO_write</c> then <c>SSL_read</c> to decrypt). SslStream runs the handshake and stays the owner of
/// the connection (its certificate, its disposal); this stream carries the data after it.
/// <para>
/// Hand-written for the hot path: SslStream's layers (its buffers, locks and async state per record) were a fixed
/// cost on every packet of a tunnel. Here a read decrypts every whole record it has into the caller's buffer in one
/// pass, and a write encrypts straight into one outgoing buffer, sent at the flush (or when full) with no copy more.
/// </para>
/// <para>
/// Safe to take over only where SslStream holds nothing unread: the stream under it must have read the handshake
/// record by record (<see cref="WriteCoalescingStream"/>'s record reads), so whatever the peer sent after the handshake
/// is still in the socket or in OpenSSL's read BIO, where this stream finds it. One reader and one writer may run at
/// once; their calls into OpenSSL take turns, a record at a time. Post-handshake messages (session tickets, key
/// updates) are handled by OpenSSL inside <c>SSL_read</c>; a reply one of them needs is left in the write BIO and
/// leaves before the next record written, as TLS 1.3 asks.
/// </para>
/// </summary>
public sealed class TlsRecordStream : DuplexStream
{
    /// <summary>Plaintext per <c>SSL_write</c>: one full record.</summary>
    private const int RecordPlaintext = 16 * 1024;

    /// <summary>What a record adds to its plaintext in TLS 1.3 (header 5, content type 1, AEAD tag 16), with room to spare.</summary>
    private const int RecordOverhead = 64;

    /// <summary>The outgoing buffer: encrypted records gathered until a flush, or until it is full.</summary>
    private const int OutCapacity = 64 * 1024;

    /// <summary>The incoming buffer: ciphertext read from the socket, handed to OpenSSL a record at a time.</summary>
    private const int InCapacity = 64 * 1024;

    private const int RecordHeader = 5; // type, version (2), length (2)

    /// <summary>The largest record a peer may send, header included (TLS 1.2's bound, the larger).</summary>
    private const int MaxRecord = RecordHeader + 16 * 1024 + 2048;

    private readonly SafeHandle _ssl;
    private readonly WriteCoalescingStream _under;
    private byte[]? _out; // rented at the first write after a flush, given back at the flush: an idle connection holds none
    private int _used;
    private byte[]? _in; // rented when ciphertext is read, given back when all of it went to OpenSSL
    private int _inStart, _inEnd;
    private bool _closeNotified;

    // Every call into OpenSSL on this connection is made under this lock, the reader's and the writer's alike. OpenSSL
    // does not take an SSL* from two threads at once: a post-handshake message (a session ticket, a key update) read on
    // one thread runs its state machine while a write on another thread sends records, and one of them then went out
    // corrupt (the peer failed it as a bad record MAC, in a test that wrote both ways right after the handshake). Held
    // for one record's work at a time, never across a wait.
    private readonly Lock _gate = new();

    private TlsRecordStream(SafeHandle ssl, WriteCoalescingStream under)
    {
        _ssl = ssl;
        _under = under;
    }

    /// <summary>
    /// Takes over the records of <paramref name="tls"/>, whose handshake just finished over <paramref name="under"/>
    /// (made with record reads); null when it cannot be done here, and the caller goes on with SslStream: not TLS 1.3,
    /// SslStream holding bytes of the peer's, or SslStream's <c>SSL*</c> out of reach (another runtime's layout, no
    /// libssl 3). Ends the record reads either way. SslStream's read buffer, which it would not use again, goes back to
    /// the pool.
    /// </summary>
    public static TlsRecordStream? TryTake(SslStream tls, WriteCoalescingStream under)
    {
        bool whole = under.AtRecordBoundary;
        under.EndRecordReads();
        if (!whole || tls.SslProtocol != SslProtocols.Tls13 || NativeTls.Handle(tls) is not { } ssl) return null;
        if (!NativeTls.GiveUpReadBuffer(tls)) return null; // SslStream holds bytes after all, or cannot be asked
        var records = new TlsRecordStream(ssl, under);
        // Reading ahead, OpenSSL would hold whole records where neither SSL_pending nor the read BIO shows them.
        return records.Call(static s => !NativeTls.ReadsAhead(s)) ? records : null;
    }

    // ---- reading ----

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // suspends whenever the socket has nothing yet
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
    {
        while (true)
        {
            if (buffer.IsEmpty)
            {
                // A zero-byte read only waits for data.
                if (HasRecord() || Call(static ssl => NativeTls.SSL_pending(ssl) > 0)) return 0;
                if (_inStart == _inEnd)
                {
                    // Waits holding no buffer (an idle connection's read); the caller reads again when data is there.
                    ReleaseIn();
                    await _under.ReadAsync(Memory<byte>.Empty, ct).ConfigureAwait(false);
                    return 0;
                }
            }
            else
            {
                int n = Decrypt(buffer.Span, out bool ended);
                if (n > 0 || ended) return n;
            }
            // More ciphertext is needed: a whole record at least.
            _in ??= ArrayPool<byte>.Shared.Rent(InCapacity);
            if (_inStart > 0 && _in.Length - _inEnd < MaxRecord)
            {
                Buffer.BlockCopy(_in, _inStart, _in, 0, _inEnd - _inStart);
                _inEnd -= _inStart;
                _inStart = 0;
            }
            int got = await _under.ReadAsync(_in.AsMemory(_inEnd), ct).ConfigureAwait(false);
            if (got <= 0) return 0; // the peer closed (without close_notify: its end all the same)
            _inEnd += got;
        }
    }

    /// <summary>The length of the whole record at the start of the ciphertext read so far, or 0 when it is not all there.</summary>
    private int WholeRecord()
    {
        int available = _inEnd - _inStart;
        if (available < RecordHeader) return 0;
        int length = RecordHeader + (_in![_inStart + 3] << 8 | _in[_inStart + 4]);
        // A length no record may have: OpenSSL refuses it from the header alone, so its header is enough.
        if (length > MaxRecord) return available;
        return available >= length ? length : 0;
    }

    private bool HasRecord() => _in is not null && WholeRecord() > 0;

    private void ReleaseIn()
    {
        if (_in is { } buffer && _inStart == _inEnd)
        {
            _in = null;
            _inStart = _inEnd = 0;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Decrypts whole records into <paramref name="plain"/> until it is full or no whole record is left; 0 when more
    /// ciphertext is needed first. OpenSSL is given one record at a time, so its read BIO (which keeps the memory it
    /// once grew to) never holds more than one. <paramref name="ended"/>: the peer's close_notify came.
    /// </summary>
    private unsafe int Decrypt(Span<byte> plain, out bool ended)
    {
        ended = false;
        int total = 0;
        using var lease = new Lease(_ssl);
        nint ssl = lease.Ssl;
        var rbio = NativeTls.SSL_get_rbio(ssl);
        fixed (byte* p = plain)
        {
            while (total < plain.Length)
            {
                lock (_gate)
                {
                    if (NativeTls.SSL_pending(ssl) == 0 && NativeTls.BIO_ctrl_pending(rbio) == 0)
                    {
                        int record = _in is null ? 0 : WholeRecord();
                        if (record == 0) break;
                        fixed (byte* r = &_in![_inStart])
                            if (NativeTls.BIO_write(rbio, r, record) != record) throw new IOException("TLS: OpenSSL's read buffer refused a record");
                        _inStart += record;
                    }
                    NativeTls.ERR_clear_error();
                    nuint before = NativeTls.BIO_ctrl_pending(rbio);
                    int n = NativeTls.SSL_read(ssl, p + total, plain.Length - total);
                    if (n > 0)
                    {
                        total += n;
                        continue;
                    }
                    // Why no data, told from this thread's error queue and the connection's state (SSL_get_error reads
                    // the last I/O state, which the writer's calls set too): an error is on the queue; a close_notify
                    // marks the connection; a record taken without data for us was a post-handshake message (a ticket,
                    // a key update), and more may follow it; else a record is not all there yet.
                    if (NativeTls.ERR_peek_error() != 0) throw Failure("read");
                    ended = (NativeTls.SSL_get_shutdown(ssl) & NativeTls.SslReceivedShutdown) != 0;
                    if (!ended && NativeTls.BIO_ctrl_pending(rbio) < before) continue;
                    break;
                }
            }
        }
        if (_inStart == _inEnd) ReleaseIn();
        return total;
    }

    private static IOException Failure(string what) => new($"TLS {what} failed: {NativeTls.TakeError() ?? "no reason given"}");

    // ---- writing ----

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] // suspends whenever the socket is full
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        while (!data.IsEmpty)
        {
            int chunk = Math.Min(data.Length, RecordPlaintext);
            if (_out is not null && OutCapacity - _used < chunk + RecordOverhead) await SendOutAsync(ct).ConfigureAwait(false);
            Encrypt(data.Span[..chunk]);
            data = data[chunk..];
            // A large write leaves as the buffer fills, not all at the flush.
            if (OutCapacity - _used < RecordPlaintext + RecordOverhead) await SendOutAsync(ct).ConfigureAwait(false);
        }
        // Anything still in the write BIO (a reply to a post-handshake message, larger than the room left): out first.
        while (WriteBioPending())
        {
            await SendOutAsync(ct).ConfigureAwait(false);
            Drain();
        }
    }

    /// <summary>Encrypts <paramref name="plain"/> (one record's worth at most) and moves the records into the outgoing buffer.</summary>
    private unsafe void Encrypt(ReadOnlySpan<byte> plain)
    {
        using (var ssl = new Lease(_ssl))
        lock (_gate)
        {
            NativeTls.ERR_clear_error();
            int n;
            fixed (byte* p = plain) n = NativeTls.SSL_write(ssl.Ssl, p, plain.Length);
            // A memory BIO takes every record, so a write is whole or an error (the connection is then unusable).
            if (n != plain.Length) throw Failure("write");
        }
        Drain();
    }

    /// <summary>Moves what the write BIO holds into the outgoing buffer, as much as fits.</summary>
    private unsafe void Drain()
    {
        _out ??= ArrayPool<byte>.Shared.Rent(OutCapacity);
        using var ssl = new Lease(_ssl);
        var wbio = NativeTls.SSL_get_wbio(ssl.Ssl);
        fixed (byte* p = _out)
        lock (_gate)
        {
            while (_used < OutCapacity && NativeTls.BIO_ctrl_pending(wbio) > 0)
            {
                int n = NativeTls.BIO_read(wbio, p + _used, OutCapacity - _used);
                if (n <= 0) break;
                _used += n;
            }
        }
    }

    private bool WriteBioPending() => Call(static ssl => NativeTls.BIO_ctrl_pending(NativeTls.SSL_get_wbio(ssl)) > 0);

    /// <summary>Sends the outgoing buffer (the buffer stays for the next records).</summary>
    private ValueTask SendOutAsync(CancellationToken ct)
    {
        if (_used == 0) return ValueTask.CompletedTask;
        var send = _under.SendAsync(_out.AsMemory(0, _used), ct);
        _used = 0; // the buffer is not written again before the send completes: writes are awaited one by one
        return send;
    }

    public override async Task FlushAsync(CancellationToken ct)
    {
        if (WriteBioPending()) Drain();
        while (_used > 0)
        {
            await SendOutAsync(ct).ConfigureAwait(false);
            if (WriteBioPending()) Drain();
        }
        if (_out is { } buffer)
        {
            _out = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
        await _under.FlushAsync(ct).ConfigureAwait(false);
    }

    public override void Flush() => FlushAsync(default).GetAwaiter().GetResult();

    /// <summary>Sends a close_notify (once): the peer reads the end of the stream, not a cut connection.</summary>
    public async Task ShutdownAsync(CancellationToken ct = default)
    {
        if (_closeNotified) return;
        _closeNotified = true;
        Call(static ssl =>
        {
            NativeTls.ERR_clear_error();
            // The runtime makes its connections quiet (no close_notify when it frees one) and lifts that only in
            // SslStream.ShutdownAsync: so here too, or OpenSSL would mark the close sent and send nothing.
            NativeTls.SSL_set_quiet_shutdown(ssl, 0);
            NativeTls.SSL_shutdown(ssl); // 0: sent, the peer's not read (not waited for); <0: already failed
            NativeTls.ERR_clear_error();
            return true;
        });
        await FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary><paramref name="call"/> on the <c>SSL*</c>, a reference held meanwhile.</summary>
    private bool Call(Func<nint, bool> call)
    {
        using var ssl = new Lease(_ssl);
        lock (_gate) return call(ssl.Ssl);
    }

    /// <summary>
    /// A reference on the <c>SSL*</c> for one call, so SslStream's disposal on another thread cannot free it meanwhile;
    /// a connection already closed reads as an I/O error.
    /// </summary>
    private readonly ref struct Lease
    {
        private readonly SafeHandle _handle;

        public Lease(SafeHandle handle)
        {
            bool added = false;
            try
            {
                handle.DangerousAddRef(ref added);
            }
            catch (ObjectDisposedException e)
            {
                throw new IOException("TLS: the connection is closed", e);
            }
            _handle = handle;
            Ssl = handle.DangerousGetHandle();
        }

        public nint Ssl { get; }

        public void Dispose() => _handle.DangerousRelease();
    }

    /// <summary>
    /// Drops the buffers (not given back to the pool: a send or a receive cut short may still be using one); the
    /// connection itself is the SslStream's to close.
    /// </summary>
    protected override void Dispose(bool disposing)
    {
        _out = null;
        _in = null;
        base.Dispose(disposing);
    }
}
