namespace Isotun.State.Cluster;

/// <summary>
/// A key as stored: its value, the revision that created it, the revision that last changed it, how many times it
/// was written since it was created (1 after the create), and the lease it is attached to (0: none).
/// </summary>
public sealed record KeyValueEntry(string Key, ReadOnlyMemory<byte> Value, long CreateRevision, long ModRevision, long Version, long Lease);
