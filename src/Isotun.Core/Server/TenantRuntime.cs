using System.Collections.Concurrent;
using System.Net;
using Isotun.Config;
using Isotun.Linux;
using Isotun.Metrics;
using Isotun.Protocol.Addressing;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Ip;
using Isotun.Security;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>
/// Everything one tenant owns at run time: its pool, its TUN device, its users and the table that maps a
/// leased address to the session holding it. Packets read from the TUN go only to this tenant's sessions.
/// </summary>
public sealed class TenantRuntime : IDisposable
{
    private readonly ConcurrentDictionary<IpKey, VpnSession> _routes = new();
    private readonly Lock _leaseLock = new();
    private readonly ILogger _log;
    private readonly LeaseAllocator _leases;
    private TunDevice? _tun;
    private Thread? _reader;
    private volatile bool _stopping;

    public TenantRuntime(TenantConfig config, ILogger log)
    {
        Config = config;
        _log = log;
        if (!IpNetwork.TryParse(config.Pool, out var pool))
            throw new ArgumentException($"tenant {config.Name}: bad pool {config.Pool}");
        Pool = pool;
        _leases = new LeaseAllocator(pool);
        Traffic = IsotunMetrics.Instance.Tenant(config.Name);
        Routes = config.Routes.Select(r => IpNetwork.TryParse(r, out var n) ? n : throw new ArgumentException($"bad route {r}")).ToArray();
        Passwords = config.PasswordFile is null ? null : PasswordFile.Load(config.PasswordFile);
    }

    public TenantConfig Config { get; }
    public string Name => Config.Name;
    public IpNetwork Pool { get; }
    public IReadOnlyList<IpNetwork> Routes { get; }
    public PasswordFile? Passwords { get; }
    public TenantTraffic Traffic { get; }
    public int Mtu => Config.Mtu;
    public IPAddress Gateway => _leases.Gateway;
    public TunDevice? Tun => _tun;

    /// <summary>Creates and configures the TUN and starts its reader thread.</summary>
    public void Start()
    {
        _tun = TunDevice.Open(Config.Device);
        IpCommand.TryRun("link", "set", "dev", _tun.Name, "addrgenmode", "none");
        IpCommand.Run("link", "set", "dev", _tun.Name, "mtu", Config.Mtu.ToString(), "up");
        IpCommand.Run("addr", "replace", $"{_leases.Gateway}/{Pool.PrefixLength}", "dev", _tun.Name);
        _reader = new Thread(ReadLoop) { IsBackground = true, Name = $"tun-{Name}" };
        _reader.Start();
    }

    public IPAddress? Lease(VpnSession session, IPAddress? preferred)
    {
        lock (_leaseLock) return _leases.Lease(session.Id.ToString("N"), preferred);
    }

    public void Release(IPAddress address)
    {
        lock (_leaseLock) _leases.Release(address);
    }

    public void Attach(VpnSession session) => _routes[session.AddressKey] = session;

    public void Detach(VpnSession session) => _routes.TryRemove(new KeyValuePair<IpKey, VpnSession>(session.AddressKey, session));

    /// <summary>TUN → sessions: one dedicated thread, blocking reads, a routing lookup per packet.</summary>
    private void ReadLoop()
    {
        var tun = _tun!;
        int maxMss4 = MssClamp.MssForMtu(Config.Mtu, 4), maxMss6 = MssClamp.MssForMtu(Config.Mtu, 6);
        PacketBuffer? buf = null;
        while (!_stopping)
        {
            buf ??= PacketBuffer.Rent(Config.Mtu);
            int n;
            try
            {
                n = tun.Read(buf.PayloadSpace);
            }
            catch (TunException e)
            {
                ServerLog.TunFailed(_log, Name, tun.Name, e.Message);
                break;
            }
            if (n < 0) break;
            if (n == 0) continue;
            var packet = buf.PayloadSpace[..n];
            if (IpPacket.TryParse(packet, out var info) != IpParseResult.Ok)
            {
                IsotunMetrics.Instance.Drop(Name, DropReason.Malformed);
                continue;
            }
            var dst = IpKey.FromBytes(IpPacket.Destination(packet, info));
            if (!_routes.TryGetValue(dst, out var session) || session.Connection is not { } conn)
            {
                IsotunMetrics.Instance.Drop(Name, DropReason.NoSession);
                continue;
            }
            if (n > conn.Mtu)
            {
                IsotunMetrics.Instance.Drop(Name, DropReason.Oversize);
                continue;
            }
            if (info.Protocol == 6) MssClamp.TryClamp(packet, info.Version == 4 ? maxMss4 : maxMss6);
            buf.Seal(CstpPacketType.Data, n);
            if (conn.Writer.TryEnqueue(buf))
            {
                Traffic.Tx(n);
                buf = null;
            }
            else
            {
                IsotunMetrics.Instance.Drop(Name, DropReason.QueueFull);
            }
        }
        buf?.Return();
    }

    public void Dispose()
    {
        _stopping = true;
        _reader?.Join(TimeSpan.FromSeconds(2));
        _tun?.Dispose();
    }
}
