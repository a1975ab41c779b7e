using Isotun.Protocol.Ip;

namespace Isotun.Protocol.Addressing;

/// <summary>
/// A prefix in the form the packet path compares against: the network and its mask as an <see cref="IpKey"/> value,
/// so a match is one AND and one compare, with no allocation (an <see cref="IpNetwork"/> holds an IPAddress).
/// </summary>
public readonly record struct PrefixMatch(IpKey Network, UInt128 Mask, int PrefixLength)
{
    public static PrefixMatch Of(IpNetwork network)
    {
        var key = IpKey.FromAddress(network.Network);
        return new PrefixMatch(key, IpNetwork.MaskFor(key.Version, network.PrefixLength), network.PrefixLength);
    }

    /// <summary>True when <paramref name="address"/> is of the same family and inside the prefix.</summary>
    public bool Contains(IpKey address) => address.Version == Network.Version && (address.Value & Mask) == Network.Value;
}
