namespace Isotun.State.Cluster;

/// <summary>A key-value store call failed for <see cref="Error"/>; the message says what was asked and why it failed.</summary>
public sealed class KeyValueStoreException(KeyValueStoreError error, string message, Exception? inner = null) : Exception(message, inner)
{
    public KeyValueStoreError Error { get; } = error;
}
