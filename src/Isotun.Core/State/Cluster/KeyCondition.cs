namespace Isotun.State.Cluster;

/// <summary>A commit's condition: <paramref name="Key"/>'s mod revision is <paramref name="ModRevision"/> (0: the key is absent).</summary>
public readonly record struct KeyCondition(string Key, long ModRevision)
{
    /// <summary>The key does not exist.</summary>
    public static KeyCondition Absent(string key) => new(key, 0);
}
