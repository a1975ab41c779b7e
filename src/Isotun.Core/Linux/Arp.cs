using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Isotun.Linux;

/// <summary>
/// Gratuitous ARP: tells a link's segment "this IPv4 address is at my MAC now", so the hosts there (a tenant's router,
/// its services) move their neighbour entry at once instead of waiting for the old one to go stale. What `arping -U`
/// does, without arping. Hand-written because .NET has no packet-socket endpoint type; the frame is 28 bytes (RFC 826,
/// RFC 5227's announcement form: sender and target protocol address both the announced one).
/// </summary>
public static unsafe class Arp
{
    /// <summary>Announces <paramref name="address"/> on <paramref name="device"/> inside namespace <paramref name="ns"/> (null: this one).</summary>
    /// <exception cref="InvalidOperationException">The device does not exist, or the packet could not be sent; the message says why.</exception>
    public static void Announce(string? ns, string device, IPAddress address)
    {
        if (address.AddressFamily != AddressFamily.InterNetwork) throw new ArgumentException("ARP announces IPv4 addresses", nameof(address));
        NetworkNamespace.Run(ns, () => Send(device, address));
    }

    private static void Send(string device, IPAddress address)
    {
        uint index = Libc.if_nametoindex(device);
        if (index == 0) throw new InvalidOperationException($"ARP on {device}: {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
        int fd = Libc.socket(Libc.AF_PACKET, Libc.SOCK_DGRAM | Libc.SOCK_CLOEXEC, BinaryPrimitives.ReverseEndianness((short)Libc.ETH_P_ARP));
        if (fd < 0) throw new InvalidOperationException($"ARP on {device}: packet socket: {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
        try
        {
            Span<byte> mac = stackalloc byte[6];
            ReadMac(fd, device, mac, "ARP");
            Span<byte> frame = stackalloc byte[28];
            Write(frame, mac, address);
            // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8].
            byte* to = stackalloc byte[20];
            new Span<byte>(to, 20).Clear();
            *(ushort*)to = Libc.AF_PACKET;
            *(ushort*)(to + 2) = BinaryPrimitives.ReverseEndianness(Libc.ETH_P_ARP);
            *(int*)(to + 4) = (int)index;
            to[11] = 6;
            for (int i = 0; i < 6; i++) to[12 + i] = 0xff; // broadcast
            fixed (byte* p = frame)
            {
                if (Libc.sendto(fd, p, (nuint)frame.Length, 0, to, 20) < 0)
                    throw new InvalidOperationException($"ARP on {device}: {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
            }
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>The ARP request that announces <paramref name="address"/> at <paramref name="mac"/> (sender = target address).</summary>
    public static void Write(Span<byte> frame, ReadOnlySpan<byte> mac, IPAddress address)
    {
        BinaryPrimitives.WriteUInt16BigEndian(frame, 1);          // hardware: Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(frame[2..], 0x0800); // protocol: IPv4
        frame[4] = 6;
        frame[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame[6..], 1);      // request
        mac.CopyTo(frame[8..]);
        address.TryWriteBytes(frame[14..], out _);
        frame[18..24].Clear();
        address.TryWriteBytes(frame[24..], out _);
    }

    /// <summary>The hardware address of <paramref name="device"/>, read through any socket <paramref name="fd"/>; errors begin with <paramref name="what"/>.</summary>
    internal static void ReadMac(int fd, string device, Span<byte> mac, string what)
    {
        // struct ifreq: name[16], then sockaddr ifr_hwaddr (family, data[14]).
        byte* req = stackalloc byte[40];
        new Span<byte>(req, 40).Clear();
        var name = System.Text.Encoding.ASCII.GetBytes(device);
        if (name.Length > 15) throw new InvalidOperationException($"{what} on {device}: name too long");
        name.CopyTo(new Span<byte>(req, 16));
        if (Libc.ioctl(fd, Libc.SIOCGIFHWADDR, req) < 0)
            throw new InvalidOperationException($"{what} on {device}: {Libc.ErrorText(Marshal.GetLastPInvokeError())}");
        new Span<byte>(req + 18, 6).CopyTo(mac);
    }
}
