namespace Isotun.State;

/// <summary>The state file cannot be used; the message names the file, the problem and the way to recover.</summary>
public sealed class StateStoreException(StateStoreError error, string path, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public StateStoreError Error { get; } = error;

    /// <summary>The state file, as configured.</summary>
    public string Path { get; } = path;
}
