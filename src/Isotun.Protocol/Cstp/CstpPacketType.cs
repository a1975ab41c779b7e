namespace Isotun.Protocol.Cstp;

/// <summary>The CSTP frame type byte (offset 6 of the 8-byte header).</summary>
public enum CstpPacketType : byte
{
    /// <summary>One IP packet.</summary>
    Data = 0x00,

    /// <summary>Dead-peer-detection request; answered with <see cref="DpdResponse"/>.</summary>
    DpdRequest = 0x03,

    /// <summary>Dead-peer-detection response.</summary>
    DpdResponse = 0x04,

    /// <summary>End of session; the payload is a reason byte (see <see cref="CstpDisconnectReason"/>) and optional text.</summary>
    Disconnect = 0x05,

    /// <summary>Idle keepalive; both openconnect and ocserv discard it.</summary>
    Keepalive = 0x07,

    /// <summary>Compressed IP packet; only valid when compression was negotiated.</summary>
    Compressed = 0x08,

    /// <summary>Server-side kick.</summary>
    Terminate = 0x09,

    /// <summary>
    /// Isotun extension, only after both ends negotiated "gso": a 10-byte little-endian virtio_net_hdr followed
    /// by one IP packet, possibly a TCP super-packet of up to 64 KiB. Never sent to a stock peer.
    /// </summary>
    IsotunGso = 0x40,
}
