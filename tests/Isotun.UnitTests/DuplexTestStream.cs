using Isotun.Transport;

namespace Isotun.UnitTests;

/// <summary>A test's own duplex stream: it says how to read and write (the memory overloads); a flush does nothing.</summary>
internal abstract class DuplexTestStream : DuplexStream
{
    public override Task FlushAsync(CancellationToken ct) => Task.CompletedTask;
    public override void Flush() { }
}
