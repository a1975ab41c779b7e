namespace Isotun.State.Cluster;

/// <summary>The keys a range read found, in key order, and the store's revision when it read them.</summary>
public sealed record RangeResult(IReadOnlyList<KeyValueEntry> Entries, long Revision);
