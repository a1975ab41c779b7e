using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Isotun.Protocol.Ip;

namespace Isotun.Linux;

/// <summary>What <see cref="Pinger.Ping"/> saw: how many echoes went out and came back, their round trips, and the last error.</summary>
public sealed record PingResult(int Transmitted, int Received, double MinMs, double AvgMs, double MaxMs, string? Error)
{
    public bool Success => Received > 0;

    /// <summary>ping's summary line, with the underlying error when not every echo came back.</summary>
    public override string ToString()
    {
        var line = $"{Transmitted} packets transmitted, {Received} received";
        if (Received > 0) line += string.Create(CultureInfo.InvariantCulture, $", rtt min/avg/max = {MinMs:0.000}/{AvgMs:0.000}/{MaxMs:0.000} ms");
        if (Received < Transmitted) line += Error is null ? ", no reply" : $", {Error}";
        return line;
    }
}

/// <summary>
/// ICMP echo over a raw socket, inside a network namespace: what `ping` does, without `ping` (a fresh machine has
/// none). Needs root (CAP_NET_RAW). Errors come back as the kernel words them ("Network is unreachable") or as the
/// ICMP error a router sent, never as a bare "no reply" when there was a reason.
/// </summary>
public static class Pinger
{
    /// <summary>Sends <paramref name="count"/> echoes, <paramref name="interval"/> apart, each waited for up to <paramref name="wait"/>.</summary>
    public static PingResult Ping(string? ns, IPAddress target, int count, TimeSpan interval, TimeSpan wait) =>
        NetworkNamespace.Run(ns, () => Run(target, count, interval, wait));

    private static PingResult Run(IPAddress target, int count, TimeSpan interval, TimeSpan wait)
    {
        bool v6 = target.AddressFamily == AddressFamily.InterNetworkV6;
        using var socket = new Socket(target.AddressFamily, SocketType.Raw, v6 ? ProtocolType.IcmpV6 : ProtocolType.Icmp);
        ushort id = (ushort)RandomNumberGenerator.GetInt32(1, ushort.MaxValue);
        var request = new byte[IcmpEcho.HeaderLength + 56];
        var payload = new byte[56];
        var reply = new byte[2048];
        var rtts = new List<double>();
        string? error = null;
        int sent = 0;
        EndPoint to = new IPEndPoint(target, 0);
        for (ushort seq = 1; seq <= count; seq++)
        {
            var started = Stopwatch.GetTimestamp();
            int length = IcmpEcho.WriteRequest(request, v6, id, seq, payload);
            sent++;
            try
            {
                socket.SendTo(request.AsSpan(0, length), SocketFlags.None, to);
                error = WaitForReply(socket, reply, v6, target, id, seq, started, wait, rtts) ?? error;
            }
            catch (SocketException e)
            {
                error = e.Message;
            }
            var rest = interval - Stopwatch.GetElapsedTime(started);
            if (seq < count && rest > TimeSpan.Zero) Thread.Sleep(rest);
        }
        return rtts.Count == 0
            ? new PingResult(sent, 0, 0, 0, 0, error)
            : new PingResult(sent, rtts.Count, rtts.Min(), rtts.Average(), rtts.Max(), error);
    }

    /// <summary>Reads until our reply or an error about our request comes, or <paramref name="wait"/> runs out; returns the error, if any.</summary>
    private static string? WaitForReply(Socket socket, byte[] buffer, bool v6, IPAddress target, ushort id, ushort seq, long started, TimeSpan wait, List<double> rtts)
    {
        while (true)
        {
            var left = wait - Stopwatch.GetElapsedTime(started);
            if (left <= TimeSpan.Zero || !socket.Poll(left, SelectMode.SelectRead)) return null;
            EndPoint from = new IPEndPoint(v6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            int n = socket.ReceiveFrom(buffer, ref from);
            var outcome = IcmpEcho.TryRead(buffer.AsSpan(0, n), v6, id, out ushort got, out byte type, out byte code);
            if (got != seq) continue;
            if (outcome == IcmpEchoOutcome.Reply && ((IPEndPoint)from).Address.Equals(target))
            {
                rtts.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                return null;
            }
            if (outcome == IcmpEchoOutcome.Error)
                return $"{IcmpEcho.DescribeError(v6, type, code)} from {((IPEndPoint)from).Address}";
        }
    }
}
