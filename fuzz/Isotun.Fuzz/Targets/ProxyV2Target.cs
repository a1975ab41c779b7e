using System.Net;
using Isotun.Protocol.Proxy;

namespace Isotun.Fuzz.Targets;

/// <summary>
/// The first bytes a gateway-fronted server reads: a PROXY v2 header, under the default and the widest bound. The
/// length read from the prefix agrees with the full parse, and an accepted header written back by
/// <see cref="ProxyV2Writer"/> parses to the same header.
/// </summary>
public sealed class ProxyV2Target : IFuzzTarget
{
    private static readonly int[] Bounds = [ProxyV2.DefaultMaxLength, ProxyV2.MaxLength];

    public string Name => "proxy";

    public string Description => "PROXY protocol v2 headers and TLVs (ProxyV2Parser), with a write-back round trip";

    public void Run(ReadOnlySpan<byte> input)
    {
        foreach (int bound in Bounds)
        {
            var lengthResult = ProxyV2Parser.TryReadLength(input, bound, out int total);
            Invariant.Defined(lengthResult);
            Invariant.That(lengthResult is ProxyParseResult.Ok or ProxyParseResult.NeedMore or ProxyParseResult.NotProxy
                or ProxyParseResult.BadVersion or ProxyParseResult.BadCommand or ProxyParseResult.TooLarge);
            Invariant.That(lengthResult == ProxyParseResult.Ok ? total >= ProxyV2.PrefixLength && total <= bound : total == 0);

            var result = ProxyV2Parser.TryParse(input, bound, out var header, out int consumed);
            Invariant.Defined(result);
            Invariant.That((result == ProxyParseResult.Ok) == (header is not null));
            if (result != ProxyParseResult.Ok)
            {
                Invariant.That(consumed == 0);
                Invariant.That(lengthResult == ProxyParseResult.Ok || result == lengthResult);
                continue;
            }

            Invariant.That(lengthResult == ProxyParseResult.Ok && consumed == total);
            Invariant.Within(consumed, Math.Min(input.Length, bound));
            Invariant.Defined(header!.Command);
            Invariant.That((header.Source is null) == (header.Destination is null));
            Invariant.That(header.Command == ProxyCommand.Proxy || header.Source is null);
            Invariant.That(header.UniqueId is null || header.UniqueId.Length <= ProxyV2.MaxUniqueIdLength);
            Invariant.That(header.ClientCertificate is null || header.ClientCertificate.Length is > 0 and <= ProxyV2.MaxClientCertificateLength);
            RoundTrip(header);
        }
    }

    private static void RoundTrip(ProxyHeader header)
    {
        var written = ProxyV2Writer.ToArray(header, withChecksum: true);
        var result = ProxyV2Parser.TryParse(written, ProxyV2.MaxLength, out var back, out int consumed);
        Invariant.That(result == ProxyParseResult.Ok && consumed == written.Length);
        Invariant.That(back!.Command == header.Command);
        if (header.Source is not null && Plain(header.Source.Address).AddressFamily != Plain(header.Destination!.Address).AddressFamily)
        {
            // One IPv4-mapped address beside a plain IPv6 one has no common family: the writer sends UNSPEC. Sockets
            // never produce that pair (both ends of one connection share a family).
            Invariant.That(back.Source is null && back.Destination is null);
        }
        else
        {
            Invariant.That(SameEndPoint(back.Source, header.Source) && SameEndPoint(back.Destination, header.Destination));
        }

        Invariant.That(back.Authority == header.Authority && back.Alpn == header.Alpn && back.Ssl == header.Ssl);
        Invariant.That(SameBytes(back.UniqueId, header.UniqueId) && SameBytes(back.ClientCertificate, header.ClientCertificate));
    }

    // The writer sends an IPv4-mapped IPv6 address as IPv4, so compare addresses that way.
    private static bool SameEndPoint(IPEndPoint? a, IPEndPoint? b) =>
        a is null || b is null
            ? a is null && b is null
            : a.Port == b.Port && Plain(a.Address).Equals(Plain(b.Address));

    private static IPAddress Plain(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static bool SameBytes(byte[]? a, byte[]? b) => a is null || b is null ? a is null && b is null : a.AsSpan().SequenceEqual(b);
}
