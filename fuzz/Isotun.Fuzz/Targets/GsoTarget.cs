using Isotun.Protocol.Ip;
using Isotun.Protocol.Offload;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// An Isotun GSO frame's payload: a 10-byte virtio-net header, then the packet. Validated as the server does (with and
/// without USO); an accepted header is a fixed point of validation, and cutting the packet gives segments that are
/// whole IP packets within the MTU, with valid checksums, carrying the payload exactly once.
/// </summary>
public sealed class GsoTarget : IFuzzTarget
{
    private const int Mtu = 1500;

    public string Name => "gso";

    public string Description => "virtio-net headers and GSO super-packets (VirtioNetHeader, GsoPacket.Validate, WriteSegment)";

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.Length < VirtioNetHeader.Length)
        {
            return;
        }

        var read = VirtioNetHeader.Read(input);
        Span<byte> again = stackalloc byte[VirtioNetHeader.Length];
        read.Write(again);
        Invariant.That(again.SequenceEqual(input[..VirtioNetHeader.Length]));

        var packet = input[VirtioNetHeader.Length..];
        foreach (bool allowUdp in (ReadOnlySpan<bool>)[false, true])
        {
            var header = read;
            var result = GsoPacket.Validate(ref header, packet, Mtu, allowUdp);
            Invariant.Defined(result);
            if (result != GsoCheckResult.Ok)
            {
                continue;
            }

            Invariant.That(allowUdp || !GsoPacket.IsUdp(header));
            var normalized = header;
            Invariant.That(GsoPacket.Validate(ref normalized, packet, Mtu, allowUdp) == GsoCheckResult.Ok && normalized.Equals(header));
            Segments(header, packet);
        }
    }

    private static void Segments(in VirtioNetHeader header, ReadOnlySpan<byte> packet)
    {
        int count = GsoPacket.SegmentCount(header, packet.Length);
        Invariant.That(count >= 1);
        IpPacket.TryParse(packet, out var ip);
        var buffer = new byte[Math.Max(packet.Length, Mtu)];
        int payload = 0;
        for (int i = 0; i < count; i++)
        {
            int length = GsoPacket.WriteSegment(packet, header, i, buffer);
            var segment = buffer.AsSpan(0, length);
            Invariant.That(IpPacket.TryParse(segment, out var info) == IpParseResult.Ok && info.TotalLength == length);
            Invariant.That(info.Version == ip.Version && info.Protocol == ip.Protocol && info.HeaderLength == ip.HeaderLength);
            if (!header.IsGso)
            {
                Invariant.That(length == packet.Length);
                if (header.NeedsChecksum) Invariant.That(L4ChecksumValid(segment, info));
                return;
            }

            Invariant.That(length <= Mtu && length > header.HeaderLength || (count == 1 && length == header.HeaderLength));
            Invariant.That(L4ChecksumValid(segment, info));
            payload += length - header.HeaderLength;
        }

        Invariant.That(payload == packet.Length - header.HeaderLength);
    }

    private static bool L4ChecksumValid(ReadOnlySpan<byte> packet, in IpPacketInfo info)
    {
        var l4 = packet[info.HeaderLength..info.TotalLength];
        return Checksum.Fold(Checksum.Sum(l4, Checksum.PseudoHeader(packet, info.Version, info.Protocol, l4.Length))) == 0xffff;
    }
}
