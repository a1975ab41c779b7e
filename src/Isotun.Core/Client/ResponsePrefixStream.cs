using Isotun.Transport;

namespace Isotun.Client;

/// <summary>
/// The client's read side during the HTTP phase: passes reads through and remembers the first bytes of the
/// response being read, so that a reply which is not HTTP at all (a wrong port, another protocol, garbage)
/// is reported as such rather than as a cut-short HTTP head. Off after the CONNECT reply: frames pass
/// straight through.
/// </summary>
internal sealed class ResponsePrefixStream(Stream inner) : ReadOnlyStream
{
    private readonly byte[] _prefix = new byte[8];
    private int _length = -1; // -1: not recording

    /// <summary>Starts remembering the bytes of the next response.</summary>
    public void StartResponse() => _length = 0;

    public void StopRecording() => _length = -1;

    /// <summary>Up to 8 bytes the server sent since <see cref="StartResponse"/> that are not the start of "HTTP/"; null when it looks like HTTP or nothing came.</summary>
    public string? NotHttpPrefix()
    {
        if (_length <= 0) return null;
        var http = "HTTP/"u8;
        int n = Math.Min(_length, http.Length);
        if (_prefix.AsSpan(0, n).SequenceEqual(http[..n])) return null;
        return string.Concat(_prefix.AsSpan(0, _length).ToArray().Select(b => b is >= 0x20 and < 0x7f ? ((char)b).ToString() : $"\\x{b:x2}"));
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) =>
        _length < 0 || _length == _prefix.Length ? inner.ReadAsync(buffer, ct) : RecordAsync(buffer, ct);

    private async ValueTask<int> RecordAsync(Memory<byte> buffer, CancellationToken ct)
    {
        int n = await inner.ReadAsync(buffer, ct).ConfigureAwait(false);
        Remember(buffer.Span[..n]);
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        int n = inner.Read(buffer, offset, count);
        if (_length >= 0) Remember(buffer.AsSpan(offset, n));
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    private void Remember(ReadOnlySpan<byte> data)
    {
        if (_length < 0) return;
        int take = Math.Min(data.Length, _prefix.Length - _length);
        data[..take].CopyTo(_prefix.AsSpan(_length));
        _length += take;
    }
}
