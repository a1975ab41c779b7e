namespace Isotun.State.Cluster;

/// <summary>What happened to a key in a watch.</summary>
public enum KeyValueEventKind
{
    Put,

    /// <summary>A delete, or the end of the lease the key was attached to.</summary>
    Delete,

    /// <summary>No change: every change under the watched prefix up to the event's revision has been delivered (no key, no value).</summary>
    Progress,
}

/// <summary>One change seen by a watch: the key, its new value (empty for a delete), and the revision of the change.</summary>
public sealed record KeyValueEvent(KeyValueEventKind Kind, string Key, ReadOnlyMemory<byte> Value, long Revision);
