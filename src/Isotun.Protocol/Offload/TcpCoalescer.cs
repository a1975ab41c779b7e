using System.Buffers.Binary;
using Isotun.Protocol.Ip;

namespace Isotun.Protocol.Offload;

/// <summary>
/// GRO in user space: consecutive segments of one TCP flow that arrived as separate packets are merged into
/// one super-packet with a virtio-net header (CHECKSUM_PARTIAL, gso_type TCPV4/6), so the TUN write and the
/// kernel's receive path run once per 64 KiB instead of once per segment. Only plain bulk segments merge:
/// ACK or ACK|PSH with payload, same addresses, ports, TTL/TOS/flow label, ACK number, window and identical
/// TCP options, each continuing the previous sequence number, no segment larger than the first, PSH only on
/// the last. Checksums are not re-verified: the segments came authenticated over TLS from the peer that made them.
/// </summary>
public sealed class TcpCoalescer
{
    private readonly byte[] _buffer;
    private readonly int _maxPacket;
    private int _length;        // bytes of packet in _buffer after the virtio header
    private int _ipHeader, _tcpHeader, _segmentSize, _count, _version;
    private uint _nextSeq;
    private bool _closed;       // a shorter segment was added: nothing may follow it

    public TcpCoalescer(int maxPacket = 65000)
    {
        _maxPacket = maxPacket;
        _buffer = GC.AllocateUninitializedArray<byte>(VirtioNetHeader.Length + maxPacket, pinned: true);
    }

    public bool HasPending => _count > 0;

    /// <summary>Segments merged into the pending super-packet.</summary>
    public int PendingSegments => _count;

    /// <summary>Starts a new super-packet with <paramref name="packet"/> if it is a mergeable TCP segment.</summary>
    public bool TryStart(ReadOnlySpan<byte> packet)
    {
        // A packet larger than the merge buffer goes out alone: a server may send DATA frames of up to 64 KiB.
        if (_count > 0 || packet.Length > _maxPacket || !Mergeable(packet, out int ipHeader, out int tcpHeader, out int payload)) return false;
        packet.CopyTo(_buffer.AsSpan(VirtioNetHeader.Length));
        _length = packet.Length;
        _ipHeader = ipHeader;
        _tcpHeader = tcpHeader;
        _segmentSize = payload;
        _version = packet[0] >> 4;
        _nextSeq = BinaryPrimitives.ReadUInt32BigEndian(packet[(ipHeader + 4)..]) + (uint)payload;
        _count = 1;
        _closed = (packet[ipHeader + 13] & 0x08) != 0; // PSH ends a run
        return true;
    }

    /// <summary>Appends <paramref name="packet"/> to the pending super-packet if it continues it.</summary>
    public bool TryAppend(ReadOnlySpan<byte> packet)
    {
        if (_count == 0 || _closed || !Mergeable(packet, out int ipHeader, out int tcpHeader, out int payload)) return false;
        if (ipHeader != _ipHeader || tcpHeader != _tcpHeader || payload > _segmentSize || _length + payload > _maxPacket) return false;
        var pending = _buffer.AsSpan(VirtioNetHeader.Length, _length);
        if (BinaryPrimitives.ReadUInt32BigEndian(packet[(ipHeader + 4)..]) != _nextSeq) return false;
        if (!SameFlow(pending, packet, ipHeader, tcpHeader)) return false;
        packet[(ipHeader + tcpHeader)..].CopyTo(_buffer.AsSpan(VirtioNetHeader.Length + _length));
        _length += payload;
        _nextSeq += (uint)payload;
        _count++;
        byte flags = packet[ipHeader + 13];
        if ((flags & 0x08) != 0) { pending[ipHeader + 13] |= 0x08; _closed = true; }
        if (payload < _segmentSize) _closed = true;
        return true;
    }

    /// <summary>
    /// Finishes the pending packet: virtio header + packet, ready for one TUN write. A single segment goes
    /// out as it came (no GSO); several become a TCP super-packet with a partial checksum. The memory is this
    /// coalescer's own buffer, valid until the next <see cref="TryStart"/>.
    /// </summary>
    public ReadOnlyMemory<byte> Flush()
    {
        var packet = _buffer.AsSpan(VirtioNetHeader.Length, _length);
        var header = new VirtioNetHeader();
        if (_count > 1)
        {
            if (_version == 4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)_length);
                Checksum.WriteIpv4HeaderChecksum(packet, _ipHeader);
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)(_length - 40));
            }
            // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum; the kernel adds the rest.
            int l4Length = _length - _ipHeader;
            ushort partial = Checksum.Fold(Checksum.PseudoHeader(packet, _version, 6, l4Length));
            BinaryPrimitives.WriteUInt16BigEndian(packet[(_ipHeader + 16)..], partial);
            header.Flags = VirtioNetHeader.FlagNeedsChecksum;
            header.GsoType = _version == 4 ? VirtioNetHeader.GsoTcpV4 : VirtioNetHeader.GsoTcpV6;
            header.HeaderLength = (ushort)(_ipHeader + _tcpHeader);
            header.GsoSize = (ushort)_segmentSize;
            header.ChecksumStart = (ushort)_ipHeader;
            header.ChecksumOffset = 16;
        }
        header.Write(_buffer);
        int total = VirtioNetHeader.Length + _length;
        _count = 0;
        _length = 0;
        return _buffer.AsMemory(0, total);
    }

    private static bool Mergeable(ReadOnlySpan<byte> packet, out int ipHeader, out int tcpHeader, out int payload)
    {
        ipHeader = tcpHeader = payload = 0;
        if (IpPacket.TryParse(packet, out var ip) != IpParseResult.Ok || ip.Protocol != 6 || ip.TotalLength != packet.Length) return false;
        if (ip.Version == 4)
        {
            if (ip.HeaderLength != 20) return false;                                          // no IP options
            if ((BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0xbfff) != 0) return false; // fragments (DF is fine)
        }
        ipHeader = ip.HeaderLength;
        if (packet.Length < ipHeader + 20) return false;
        tcpHeader = (packet[ipHeader + 12] >> 4) * 4;
        if (tcpHeader < 20 || ipHeader + tcpHeader > packet.Length) return false;
        byte flags = packet[ipHeader + 13];
        if ((flags & ~0x08) != 0x10) return false;                                            // ACK, optionally PSH
        payload = packet.Length - ipHeader - tcpHeader;
        return payload > 0;
    }

    private static bool SameFlow(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, int ipHeader, int tcpHeader)
    {
        if (a[0] >> 4 == 4)
        {
            // TOS, TTL, protocol, addresses.
            if (a[1] != b[1] || a[8] != b[8] || !a.Slice(12, 8).SequenceEqual(b.Slice(12, 8))) return false;
            if ((a[6] & 0x40) != (b[6] & 0x40)) return false;                                  // DF
        }
        else
        {
            // Version, traffic class, flow label; next header, hop limit, addresses.
            if (!a[..4].SequenceEqual(b[..4]) || a[6] != b[6] || a[7] != b[7] || !a.Slice(8, 32).SequenceEqual(b.Slice(8, 32))) return false;
        }
        // Ports, ACK number and window (as the kernel's GRO requires), then the options byte for byte.
        return a.Slice(ipHeader, 4).SequenceEqual(b.Slice(ipHeader, 4))
            && a.Slice(ipHeader + 8, 4).SequenceEqual(b.Slice(ipHeader + 8, 4))
            && a.Slice(ipHeader + 14, 2).SequenceEqual(b.Slice(ipHeader + 14, 2))
            && a.Slice(ipHeader + 20, tcpHeader - 20).SequenceEqual(b.Slice(ipHeader + 20, tcpHeader - 20));
    }
}
