namespace Isotun.Protocol.Offload;

/// <summary>Why a peer's virtio-net header was refused. Each is counted; the packet never reaches the kernel.</summary>
public enum GsoCheckResult
{
    Ok,
    /// <summary>Not an IP packet, or its lengths disagree with the buffer.</summary>
    BadPacket,
    /// <summary>A gso_type Isotun does not negotiate (UFO, USO, ECN) or an unknown one.</summary>
    BadType,
    /// <summary>TCPV4 on an IPv6 packet, TCPV6 on IPv4, or not TCP at all.</summary>
    WrongVersion,
    /// <summary>csum_start/csum_offset that do not point at the L4 checksum, or past the end.</summary>
    BadOffsets,
    /// <summary>gso_size zero or above the MTU.</summary>
    BadGsoSize,
}
