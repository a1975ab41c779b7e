using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Isotun.Protocol.Offload;

namespace Isotun.Protocol.Ip;

/// <summary>What an ICMP or ICMPv6 message read from a raw socket says about our echo request.</summary>
public enum IcmpEchoOutcome
{
    /// <summary>The echo reply to our identifier and sequence number.</summary>
    Reply,

    /// <summary>An error about our request (destination unreachable, time exceeded): <see cref="IcmpEcho.DescribeError"/> names it.</summary>
    Error,

    /// <summary>Someone else's ICMP traffic (a raw socket sees all of it), or our own request looped back.</summary>
    NotOurs,

    /// <summary>Too short or malformed.</summary>
    Malformed,
}

/// <summary>
/// ICMP (RFC 792) and ICMPv6 (RFC 4443) echo, the messages `ping` sends, written and read without I/O. An IPv4 raw
/// socket hands back the whole IP packet and an ICMPv6 one only the ICMPv6 message; the kernel fills in the ICMPv6
/// checksum itself (it covers a pseudo-header only it knows), so only IPv4's is computed here.
/// </summary>
public static class IcmpEcho
{
    public const int HeaderLength = 8;
    private const byte EchoRequest4 = 8, EchoReply4 = 0, Unreachable4 = 3, TimeExceeded4 = 11;
    private const byte EchoRequest6 = 128, EchoReply6 = 129, Unreachable6 = 1, TooBig6 = 2, TimeExceeded6 = 3;

    /// <summary>Writes an echo request into <paramref name="destination"/> and returns its length (header + payload).</summary>
    public static int WriteRequest(Span<byte> destination, bool ipv6, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        int length = HeaderLength + payload.Length;
        if (destination.Length < length) throw new ArgumentException("destination too small", nameof(destination));
        destination[0] = ipv6 ? EchoRequest6 : EchoRequest4;
        destination[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(destination[4..], identifier);
        BinaryPrimitives.WriteUInt16BigEndian(destination[6..], sequence);
        payload.CopyTo(destination[HeaderLength..]);
        if (!ipv6) BinaryPrimitives.WriteUInt16BigEndian(destination[2..], Checksum.Of(destination[..length]));
        return length;
    }

    /// <summary>
    /// Writes a whole IPv4 packet carrying an echo request (20-byte header, DF, TTL 64), as a tunnel client puts it in a
    /// DATA frame where there is no kernel to add the header; returns its length.
    /// </summary>
    public static int WriteIpv4Request(Span<byte> destination, IPAddress source, IPAddress target, ushort identifier, ushort sequence, ReadOnlySpan<byte> payload)
    {
        const int header = 20;
        int length = header + HeaderLength + payload.Length;
        if (destination.Length < length || length > ushort.MaxValue) throw new ArgumentException("destination too small or packet too long", nameof(destination));
        if (source.AddressFamily != AddressFamily.InterNetwork || target.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException("IPv4 addresses expected");
        var ip = destination[..header];
        ip.Clear();
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], sequence);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000);
        ip[8] = 64;
        ip[9] = 1;
        source.TryWriteBytes(ip[12..16], out _);
        target.TryWriteBytes(ip[16..20], out _);
        Checksum.WriteIpv4HeaderChecksum(ip, header);
        return header + WriteRequest(destination[header..], ipv6: false, identifier, sequence, payload);
    }

    /// <summary>
    /// Reads one message from a raw socket: with <paramref name="ipv6"/> false it starts with the IPv4 header. An
    /// error message counts as ours when the request it quotes carries our identifier; <paramref name="errorType"/>
    /// and <paramref name="errorCode"/> are then set.
    /// </summary>
    public static IcmpEchoOutcome TryRead(ReadOnlySpan<byte> message, bool ipv6, ushort identifier, out ushort sequence, out byte errorType, out byte errorCode)
    {
        sequence = 0;
        errorType = errorCode = 0;
        if (!ipv6)
        {
            if (IpPacket.TryParse(message, out var info) != IpParseResult.Ok || info.Version != 4 || info.Protocol != 1) return IcmpEchoOutcome.Malformed;
            message = message[info.HeaderLength..info.TotalLength];
        }
        if (message.Length < HeaderLength) return IcmpEchoOutcome.Malformed;
        byte type = message[0];
        if (type == (ipv6 ? EchoReply6 : EchoReply4))
        {
            if (BinaryPrimitives.ReadUInt16BigEndian(message[4..]) != identifier) return IcmpEchoOutcome.NotOurs;
            sequence = BinaryPrimitives.ReadUInt16BigEndian(message[6..]);
            return IcmpEchoOutcome.Reply;
        }
        bool error = ipv6 ? type is Unreachable6 or TooBig6 or TimeExceeded6 : type is Unreachable4 or TimeExceeded4;
        if (!error) return IcmpEchoOutcome.NotOurs;

        // The error quotes our request: its IP header, then at least the first 8 bytes of the ICMP message.
        var quoted = message[HeaderLength..];
        int quotedHeader;
        if (ipv6)
        {
            if (quoted.Length < 40 + HeaderLength || quoted[0] >> 4 != 6 || quoted[6] != 58) return IcmpEchoOutcome.NotOurs;
            quotedHeader = 40;
        }
        else
        {
            if (quoted.Length < 20 || quoted[0] >> 4 != 4 || quoted[9] != 1) return IcmpEchoOutcome.NotOurs;
            quotedHeader = (quoted[0] & 0x0F) * 4;
            if (quotedHeader < 20 || quoted.Length < quotedHeader + HeaderLength) return IcmpEchoOutcome.NotOurs;
        }
        var request = quoted[quotedHeader..];
        if (request[0] != (ipv6 ? EchoRequest6 : EchoRequest4) || BinaryPrimitives.ReadUInt16BigEndian(request[4..]) != identifier)
            return IcmpEchoOutcome.NotOurs;
        sequence = BinaryPrimitives.ReadUInt16BigEndian(request[6..]);
        errorType = type;
        errorCode = message[1];
        return IcmpEchoOutcome.Error;
    }

    /// <summary>The words `ping` would print for an ICMP error.</summary>
    public static string DescribeError(bool ipv6, byte type, byte code) => (ipv6, type, code) switch
    {
        (false, Unreachable4, 0) => "Destination Net Unreachable",
        (false, Unreachable4, 1) => "Destination Host Unreachable",
        (false, Unreachable4, 3) => "Destination Port Unreachable",
        (false, Unreachable4, 4) => "Frag needed",
        (false, Unreachable4, 13) => "Packet filtered",
        (false, Unreachable4, _) => $"Destination Unreachable (code {code})",
        (false, TimeExceeded4, _) => "Time to live exceeded",
        (true, Unreachable6, 0) => "Destination unreachable: No route",
        (true, Unreachable6, 1) => "Destination unreachable: Administratively prohibited",
        (true, Unreachable6, 3) => "Destination unreachable: Address unreachable",
        (true, Unreachable6, _) => $"Destination unreachable (code {code})",
        (true, TooBig6, _) => "Packet too big",
        (true, TimeExceeded6, _) => "Time exceeded: Hop limit",
        _ => $"ICMP type {type} code {code}",
    };
}
