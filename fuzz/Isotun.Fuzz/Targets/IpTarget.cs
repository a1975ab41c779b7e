using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// One packet out of the tunnel: the IP header (IpPacket), the flow hash that picks its queue (symmetric in the two
/// directions), the MSS clamp (only the MSS and the checksum change, and a valid TCP checksum stays valid), and the
/// same bytes read as an ICMP or ICMPv6 message by the ping helper (IcmpEcho.TryRead).
/// </summary>
public sealed class IpTarget : IFuzzTarget
{
    /// <summary>The echo identifier the seeds use (as in the unit tests).</summary>
    public const ushort Identifier = 0x1234;

    private const int MaxMss = 1360;

    public string Name => "ip";

    public string Description => "IPv4/IPv6 headers (IpPacket), FlowHash, MssClamp, ICMP echo replies and errors (IcmpEcho.TryRead)";

    public void Run(ReadOnlySpan<byte> input)
    {
        var result = IpPacket.TryParse(input, out var info);
        Invariant.Defined(result);
        if (result == IpParseResult.Ok)
        {
            Invariant.That(info.Version is 4 or 6);
            Invariant.That(info.Version == 6 ? info.HeaderLength == 40 : info.HeaderLength is >= 20 and <= 60);
            Invariant.That(info.HeaderLength <= info.TotalLength);
            Invariant.Within(info.TotalLength, input.Length);
            Invariant.That(IpPacket.Source(input, info).Length == IpPacket.Destination(input, info).Length);
            CheckFlowHash(input, info);
            CheckMssClamp(input, info);
        }
        else
        {
            Invariant.That(info == default);
        }

        foreach (bool ipv6 in (ReadOnlySpan<bool>)[false, true])
        {
            var outcome = IcmpEcho.TryRead(input, ipv6, Identifier, out ushort sequence, out byte errorType, out byte errorCode);
            Invariant.Defined(outcome);
            if (outcome == IcmpEchoOutcome.Error)
            {
                Invariant.That(ipv6 ? errorType is 1 or 2 or 3 : errorType is 3 or 11);
                Invariant.That(IcmpEcho.DescribeError(ipv6, errorType, errorCode).Length > 0);
            }
            else
            {
                Invariant.That(errorType == 0 && errorCode == 0);
                Invariant.That(outcome == IcmpEchoOutcome.Reply || sequence == 0);
            }
        }
    }

    // Both directions of a flow hash alike: swap the addresses (and the ports of TCP and UDP) and hash again.
    private static void CheckFlowHash(ReadOnlySpan<byte> input, in IpPacketInfo info)
    {
        uint hash = FlowHash.Of(input, info);
        Invariant.That(FlowHash.Pick(hash, 7) is >= 0 and < 7);
        var swapped = input.ToArray();
        int size = info.Version == 4 ? 4 : 16;
        int src = info.Version == 4 ? 12 : 8;
        input.Slice(src, size).CopyTo(swapped.AsSpan(src + size));
        input.Slice(src + size, size).CopyTo(swapped.AsSpan(src));
        if (info.Protocol is 6 or 17 && info.HeaderLength + 4 <= info.TotalLength)
        {
            input.Slice(info.HeaderLength, 2).CopyTo(swapped.AsSpan(info.HeaderLength + 2));
            input.Slice(info.HeaderLength + 2, 2).CopyTo(swapped.AsSpan(info.HeaderLength));
        }

        Invariant.That(FlowHash.Of(swapped, info) == hash);
    }

    private static void CheckMssClamp(ReadOnlySpan<byte> input, in IpPacketInfo info)
    {
        var packet = input.ToArray();
        bool validBefore = info.Protocol == 6 && TcpChecksumValid(packet, info);
        bool clamped = MssClamp.TryClamp(packet, MaxMss);
        if (!clamped)
        {
            Invariant.That(packet.AsSpan().SequenceEqual(input));
            return;
        }

        Invariant.That(info.Protocol == 6);
        int changed = 0;
        for (int i = 0; i < packet.Length; i++)
        {
            if (packet[i] != input[i]) changed++;
        }

        Invariant.That(changed <= 4); // two bytes of MSS, two of checksum
        Invariant.That(!validBefore || TcpChecksumValid(packet, info));

        // Clamped once, the packet is at the bound: a second clamp finds nothing to do.
        Invariant.That(!MssClamp.TryClamp(packet, MaxMss));
    }

    private static bool TcpChecksumValid(ReadOnlySpan<byte> packet, in IpPacketInfo info)
    {
        var tcp = packet[info.HeaderLength..info.TotalLength];
        if (tcp.Length < 20) return false;
        ulong pseudo = Checksum.PseudoHeader(packet, info.Version, 6, tcp.Length);
        return Checksum.Fold(Checksum.Sum(tcp, pseudo)) == 0xffff;
    }
}
