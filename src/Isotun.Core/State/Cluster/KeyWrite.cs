namespace Isotun.State.Cluster;

/// <summary>One write of a commit: a put of <see cref="Value"/> (attached to <see cref="Lease"/> unless 0), or a delete.</summary>
public readonly record struct KeyWrite(string Key, ReadOnlyMemory<byte> Value, long Lease, bool IsDelete)
{
    public static KeyWrite Put(string key, ReadOnlyMemory<byte> value, long lease = 0) => new(key, value, lease, false);

    /// <summary>Deletes the key (nothing happens, and no event is made, when it is absent).</summary>
    public static KeyWrite Delete(string key) => new(key, ReadOnlyMemory<byte>.Empty, 0, true);
}
