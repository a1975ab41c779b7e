namespace Isotun.Protocol.Cstp;

/// <summary>Reason bytes carried as the first payload byte of a <see cref="CstpPacketType.Disconnect"/> frame.</summary>
public static class CstpDisconnectReason
{
    /// <summary>User logged off; the cookie should be invalidated.</summary>
    public const byte User = 0xb0;

    /// <summary>Client is reconnecting; keep the cookie.</summary>
    public const byte Reconnecting = 0x91;

    /// <summary>Error.</summary>
    public const byte Error = 0x70;

    /// <summary>Paused (openconnect SIGUSR2); keep the cookie.</summary>
    public const byte Pause = 0xd1;
}
