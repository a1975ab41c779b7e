namespace Isotun.Protocol.Ip;

/// <summary>
/// Header facts of one IP packet. For IPv6, <see cref="HeaderLength"/> is 40 and <see cref="Protocol"/> is the first
/// Next Header (extension headers are not walked); <see cref="TotalLength"/> is 40 + payload length.
/// </summary>
public readonly record struct IpPacketInfo(int Version, int HeaderLength, int TotalLength, byte Protocol);
