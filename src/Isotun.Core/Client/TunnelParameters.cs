using System.Net;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;

namespace Isotun.Client;

/// <summary>What the server's CONNECT reply gave this client: address, MTU, routes, DNS and timers.</summary>
public sealed record TunnelParameters(
    IPAddress Address,
    IPAddress? Netmask,
    int Mtu,
    IReadOnlyList<IpNetwork> SplitInclude,
    IReadOnlyList<IPAddress> Dns,
    int Dpd,
    int Keepalive)
{
    /// <summary>The IPv6 address inside the tunnel (dual stack), from X-CSTP-Address-IP6, or null.</summary>
    public IPAddress? Address6 { get; init; }

    /// <summary>Networks the server keeps off the tunnel (X-CSTP-Split-Exclude, -IP6): they stay on the way they had.</summary>
    public IReadOnlyList<IpNetwork> SplitExclude { get; init; } = [];

    public const int MinMtu = ConnectReply.MinMtu;
    public const int MaxMtu = ConnectReply.MaxMtu;

    /// <summary>
    /// Reads the X-CSTP headers (<see cref="ConnectReply.TryParse"/>). A missing or bad MTU or address is a protocol
    /// error, as for openconnect; anything else unusable is skipped.
    /// </summary>
    public static TunnelParameters Parse(HttpResponseHead head)
    {
        var result = ConnectReply.TryParse(head.Headers, out var reply, out var problem);
        return result switch
        {
            ConnectReplyParseResult.Ok => From(reply!),
            ConnectReplyParseResult.NoMtu => throw new ClientException(ClientExitCode.ProtocolError, "server sent no MTU (X-CSTP-MTU)"),
            ConnectReplyParseResult.BadMtu => throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unusable MTU '{problem}'"),
            ConnectReplyParseResult.NoAddress => throw new ClientException(ClientExitCode.ProtocolError, "server sent no IP address (X-CSTP-Address)"),
            ConnectReplyParseResult.BadAddress => throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unusable address '{problem}'"),
            _ => throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unusable CONNECT reply ({result})"),
        };
    }

    private static TunnelParameters From(ConnectReply r) =>
        new(r.Address, r.Netmask, r.Mtu, r.SplitInclude, r.Dns, r.Dpd, r.Keepalive) { Address6 = r.Address6, SplitExclude = r.SplitExclude };
}
