namespace Isotun.Protocol.Cstp;

/// <summary>
/// Outcome of <see cref="ConnectReply.TryParse"/>. Only the MTU and the address are mandatory, as for openconnect;
/// an unusable optional header (netmask, route, DNS server, timer) is skipped and the reply is still <see cref="Ok"/>.
/// </summary>
public enum ConnectReplyParseResult
{
    /// <summary>The reply carries a usable MTU and IPv4 address.</summary>
    Ok,

    /// <summary>Neither <c>X-CSTP-MTU</c> nor <c>X-DTLS-MTU</c> was sent.</summary>
    NoMtu,

    /// <summary>The MTU is not a decimal number in [<see cref="ConnectReply.MinMtu"/>, <see cref="ConnectReply.MaxMtu"/>].</summary>
    BadMtu,

    /// <summary>No <c>X-CSTP-Address</c> was sent.</summary>
    NoAddress,

    /// <summary>The address is not a strict IPv4 literal (an IPv6 address, a prefix, a name, a shorthand such as <c>10.1</c>).</summary>
    BadAddress,
}
