using System.Net;
using System.Net.Sockets;

namespace Isotun.Linux;

/// <summary>
/// Unsolicited neighbour advertisement (RFC 4861 §7.2.6): tells a link's segment "this IPv6 address is at my MAC now",
/// with the override flag, so the hosts there (a tenant's router, its services) move their neighbour entry at once.
/// IPv6's gratuitous ARP (<see cref="Arp"/>). Sent on a raw ICMPv6 socket to all nodes (ff02::1) with a hop limit of
/// 255, as receivers require; the kernel fills in the source (the link's link-local address) and the checksum.
/// The 32-byte message is written by hand: .NET has no neighbour discovery API.
/// </summary>
public static class Ndp
{
    /// <summary>Length of an advertisement with the target link-layer address option.</summary>
    public const int Length = 32;

    /// <summary>Announces <paramref name="address"/> on <paramref name="device"/> inside namespace <paramref name="ns"/> (null: this one).</summary>
    /// <exception cref="InvalidOperationException">The device does not exist, or the packet could not be sent; the message says why.</exception>
    public static void Announce(string? ns, string device, IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetworkV6) throw new ArgumentException("neighbour advertisements announce IPv6 addresses", nameof(address));
        NetworkNamespace.Run(ns, () => Send(device, address));
    }

    private static void Send(string device, IPAddress address)
    {
        uint index = Libc.if_nametoindex(device);
        if (index == 0) throw new InvalidOperationException($"NDP on {device}: {Libc.ErrorText(System.Runtime.InteropServices.Marshal.GetLastPInvokeError())}");
        try
        {
            using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Raw, ProtocolType.IcmpV6);
            socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastTimeToLive, 255);
            socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, (int)index);
            Span<byte> mac = stackalloc byte[6];
            Arp.ReadMac((int)socket.Handle, device, mac, "NDP");
            var message = new byte[Length];
            Write(message, mac, address);
            socket.SendTo(message, new IPEndPoint(new IPAddress(AllNodes, index), 0));
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"NDP on {device}: {e.Message}", e);
        }
    }

    private static readonly byte[] AllNodes = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// <summary>The advertisement of <paramref name="address"/> at <paramref name="mac"/>: override set, router and solicited clear.</summary>
    public static void Write(Span<byte> message, ReadOnlySpan<byte> mac, IPAddress address)
    {
        message[..Length].Clear();
        message[0] = 136;    // neighbour advertisement
        message[4] = 0x20;   // flags: override
        address.TryWriteBytes(message[8..24], out _);
        message[24] = 2;     // option: target link-layer address
        message[25] = 1;     // in units of 8 bytes
        mac.CopyTo(message[26..32]);
    }
}
