namespace Isotun.Protocol.Cstp;

/// <summary>A parsed CSTP frame header. <see cref="PayloadLength"/> excludes the 8 header bytes.</summary>
public readonly record struct CstpFrameHeader(CstpPacketType Type, int PayloadLength);
