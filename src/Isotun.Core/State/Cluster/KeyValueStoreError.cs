namespace Isotun.State.Cluster;

/// <summary>Why a key-value store call failed (bad arguments are <see cref="ArgumentException"/>s instead).</summary>
public enum KeyValueStoreError
{
    /// <summary>A watch asked for history the store no longer keeps.</summary>
    Compacted,

    /// <summary>A put named a lease that does not exist (never granted, expired or revoked).</summary>
    LeaseNotFound,

    /// <summary>The store could not be reached or could not be used (network, file, server error).</summary>
    Unavailable,
}
