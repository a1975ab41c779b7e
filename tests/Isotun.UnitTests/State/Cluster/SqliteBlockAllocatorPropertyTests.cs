using Isotun.State.Cluster;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.State.Cluster;

/// <summary>The block allocator's property on the SQLite store: each node its own instance on one temporary file.</summary>
public sealed class SqliteBlockAllocatorPropertyTests : BlockAllocatorProperty, IDisposable
{
    private readonly TempDirectory _temp = new();

    protected override IKeyValueStore Connect() => new SqliteKeyValueStore(_temp.File("kv.db"));

    public void Dispose() => _temp.Dispose();
}
