namespace Isotun.Tun;

/// <summary>A TUN could not be opened, configured or read; the message says which and why.</summary>
public sealed class TunException(string message) : Exception(message);
