using System.Net;
using Isotun.Metrics;
using Isotun.Protocol.Addressing;
using Isotun.Security;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// Sites end to end in memory: networks behind a user's client are routed to that user's session, accepted from it
/// only, follow the user's newest session, obey the tenant's east-west policy and are pushed to the other clients.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessSiteTests(InProcessPki pki) : IDisposable
{
    private const string Password = "site secret";
    private static readonly IPAddress HostA = IPAddress.Parse("192.168.50.7"), HostB = IPAddress.Parse("192.168.60.7");
    private readonly TempDirectory _dir = new();

    /// <summary>Site a behind gw-a (192.168.50.0/24), site b behind gw-b (192.168.60.0/24), and dave on the road.</summary>
    private Func<TenantConfig, TenantConfig> Sites(IReadOnlyList<SiteLink>? eastWest = null)
    {
        var passwd = _dir.File("sites.passwd");
        foreach (var user in new[] { "gw-a", "gw-b", "dave" })
            PasswordFile.SetUser(passwd, user, PasswordHasher.Hash(Password, PasswordHasher.MinIterations));
        return t => t with
        {
            PasswordFile = passwd,
            Routes = [IpNetwork.Parse("198.18.30.0/24")],
            Sites = [new SiteConfig("a", "gw-a", [IpNetwork.Parse("192.168.50.0/24")]), new SiteConfig("b", "gw-b", [IpNetwork.Parse("192.168.60.0/24")])],
            EastWest = eastWest,
        };
    }

    private static Task<InProcessClient> Connect(InProcessServer server, string user) =>
        InProcessClient.ConnectAsync(server, server.Options(user: user, password: Password));

    [Fact]
    public async Task A_sites_subnets_go_to_its_users_session_and_only_that_session_may_send_from_them()
    {
        await using var server = await InProcessServer.StartAsync(pki, Sites());
        Assert.Equal(["192.168.50.0/24", "192.168.60.0/24"], server.Network().Routes.Select(r => r.ToString()).Order());
        await using var gwA = await Connect(server, "gw-a");
        await using var dave = await Connect(server, "dave");
        var session = server.Session(gwA.Address)!;
        Assert.Equal("a", session.Site?.Name);
        Assert.Null(server.Session(dave.Address)!.Site);

        // Upload from a host behind gw-a, and the answer back to it.
        var up = Packets.Udp(HostA, Packets.Far4, 40000, 53, "from site a"u8);
        gwA.Send(up);
        Assert.Equal(up, Packets.Take(server.Tun(), "a packet from site a's subnet did not come out of the server's TUN"));
        var down = Packets.Udp(Packets.Far4, HostA, 53, 40000, "to site a"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(down, server.Tun().Offload)));
        Assert.Equal(down, gwA.Receive("a packet to site a's subnet did not reach gw-a"));
        // Counted once the packet is handed on, so a packet may arrive a moment before its count.
        await Eventually.True(() => session.Site!.RxBytes == up.Length && session.Site.TxBytes == down.Length,
            $"site a did not count {up.Length} bytes in and {down.Length} out");

        // Anyone else sending from site a, and gw-a sending from outside it, is dropped and counted.
        long spoofed = ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource);
        dave.Send(Packets.Udp(HostA, Packets.Far4, 40000, 53, "dave posing as site a"u8));
        gwA.Send(Packets.Udp(IPAddress.Parse("192.168.99.7"), Packets.Far4, 40000, 53, "not site a"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource) == spoofed + 2, "the spoofed packets were not counted");
        Assert.True(Packets.NothingArrives(server.Tun()));

        // Routes: dave is given both sites, gw-a the other one and never its own.
        Assert.Equal(["192.168.50.0/24", "192.168.60.0/24", "198.18.30.0/24"], dave.Parameters.SplitInclude.Select(r => r.ToString()).Order());
        Assert.Equal(["192.168.60.0/24", "198.18.30.0/24"], gwA.Parameters.SplitInclude.Select(r => r.ToString()).Order());
    }

    [Fact]
    public async Task A_subnet_moved_to_another_site_by_a_reload_goes_to_that_sites_session_and_no_longer_to_the_old_one()
    {
        await using var server = await InProcessServer.StartAsync(pki, Sites());
        await using var gwA = await Connect(server, "gw-a");
        await using var gwB = await Connect(server, "gw-b");
        var tenant = server.Server.TenantRuntimes.Single();
        // Site a's 192.168.50.0/24 moves to site b, and site a gets 192.168.51.0/24 instead.
        Assert.Null(tenant.TryApply(tenant.Config with
        {
            Sites = [new SiteConfig("a", "gw-a", [IpNetwork.Parse("192.168.51.0/24")]), new SiteConfig("b", "gw-b", [IpNetwork.Parse("192.168.60.0/24"), IpNetwork.Parse("192.168.50.0/24")])],
        }));
        Assert.Equal(["192.168.50.0/24", "192.168.51.0/24", "192.168.60.0/24"], server.Network().Routes.Select(r => r.ToString()).Order());

        // Down: a packet for the moved subnet goes to gw-b, and gw-a gets nothing.
        var down = Packets.Udp(Packets.Far4, HostA, 53, 40000, "to the moved subnet"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(down, server.Tun().Offload)));
        Assert.Equal(down, gwB.Receive("a packet for the moved subnet did not reach its new site's gateway"));
        Assert.True(Packets.NothingArrives(gwA.Tun), "a packet for the moved subnet reached its old site's gateway");

        // Up: gw-b may send from it now, gw-a no longer may (dropped and counted); gw-a's new subnet is its own.
        long spoofed = ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource);
        gwA.Send(Packets.Udp(HostA, Packets.Far4, 40000, 53, "gw-a from its old subnet"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource) == spoofed + 1, "gw-a's packet from its old subnet was not dropped as spoofed");
        Assert.True(Packets.NothingArrives(server.Tun()));
        var up = Packets.Udp(HostA, Packets.Far4, 40000, 53, "gw-b from the moved subnet"u8);
        gwB.Send(up);
        Assert.Equal(up, Packets.Take(server.Tun(), "gw-b's packet from the moved subnet did not come out of the server's TUN"));
        gwA.RoundTrip(server, IPAddress.Parse("192.168.51.7"));
    }

    [Fact]
    public async Task Sites_of_one_tenant_reach_each_other_through_the_server()
    {
        await using var server = await InProcessServer.StartAsync(pki, Sites());
        await using var gwA = await Connect(server, "gw-a");
        await using var gwB = await Connect(server, "gw-b");
        var packet = Packets.Udp(HostA, HostB, 40000, 7, "a to b"u8);
        gwA.Send(packet);
        // The tenant's kernel routes site b's subnet back into the TUN; the memory twin has no kernel, so the test
        // hands the packet back as the kernel would, and the server sends it to gw-b.
        var routed = Packets.Take(server.Tun(), "the packet from a to b did not reach the tenant's TUN");
        Assert.True(server.Tun().Inject(Packets.Framed(routed, server.Tun().Offload)));
        Assert.Equal(packet, gwB.Receive("the packet from site a did not reach gw-b"));
    }

    [Fact]
    public async Task The_newest_session_of_the_user_carries_the_site_and_hands_it_back_when_it_ends()
    {
        await using var server = await InProcessServer.StartAsync(pki, Sites());
        await using var first = await Connect(server, "gw-a");
        var second = await Connect(server, "gw-a");
        Assert.Equal("a", server.Session(second.Address)!.Site?.Name);
        Assert.Null(server.Session(first.Address)!.Site);

        var down = Packets.Udp(Packets.Far4, HostA, 53, 40000, "to site a"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(down, server.Tun().Offload)));
        Assert.Equal(down, second.Receive("the site's packet did not go to the newest session"));
        long spoofed = ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource);
        first.Send(Packets.Udp(HostA, Packets.Far4, 40000, 53, "old session"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.SpoofedSource) == spoofed + 1, "the older session's packet from the site was not dropped");

        await second.StopAsync();
        await second.DisposeAsync();
        await Eventually.True(() => server.Session(first.Address)!.Site?.Name == "a", "the site did not pass back to the user's other session");
        Assert.True(server.Tun().Inject(Packets.Framed(down, server.Tun().Offload)));
        Assert.Equal(down, first.Receive("the site's packet did not go to the remaining session"));
    }

    [Fact]
    public async Task An_older_session_that_reconnects_does_not_take_the_site_from_a_newer_one_still_up()
    {
        await using var server = await InProcessServer.StartAsync(pki, Sites());
        await using var first = await Connect(server, "gw-a");
        await using var second = await Connect(server, "gw-a");
        var older = server.Session(first.Address)!;
        var newer = server.Session(second.Address)!;
        var dropped = older.Connection!;

        dropped.Abort(Isotun.Server.TunnelEnd.DeadPeer); // the older gateway's connection breaks; it comes back with its cookie
        await Eventually.True(() => older.Connection is { } c && !ReferenceEquals(c, dropped), "the older session did not reconnect", TimeSpan.FromSeconds(20));
        Assert.Equal("a", newer.Site?.Name);
        Assert.Null(older.Site);
        var down = Packets.Udp(Packets.Far4, HostA, 53, 40000, "to site a"u8);
        Assert.True(server.Tun().Inject(Packets.Framed(down, server.Tun().Offload)));
        Assert.Equal(down, second.Receive("the site's packet did not stay with the newest session"));
    }

    /// <summary>
    /// Clients route each address family apart: split routes of IPv6 alone leave IPv4 wholly in the tunnel, and a site
    /// subnet of IPv4 is then not pushed (it would make IPv4 a split tunnel); IPv6 site subnets are, as the IPv6 pool
    /// goes out as a split route of its own.
    /// </summary>
    [Fact]
    public async Task A_site_subnet_of_a_family_the_tenant_does_not_split_is_not_pushed()
    {
        var sites = Sites([new SiteLink("clients", "b")]);
        await using var server = await InProcessServer.StartAsync(pki, t => sites(t) with
        {
            Pool6 = IpNetwork.Parse("fd00:10::/64"),
            Routes = [IpNetwork.Parse("fd00:30::/64")],
            Sites = [new SiteConfig("a", "gw-a", [IpNetwork.Parse("192.168.50.0/24")]),
                new SiteConfig("b", "gw-b", [IpNetwork.Parse("192.168.60.0/24"), IpNetwork.Parse("fd00:60::/64")])],
        });
        await using var dave = await Connect(server, "dave");
        Assert.Equal(["fd00:10::/64", "fd00:30::/64", "fd00:60::/64"], dave.Parameters.SplitInclude.Select(r => r.ToString()).Order());
    }

    [Fact]
    public async Task The_east_west_policy_drops_and_counts_what_it_does_not_link()
    {
        // a and b may talk; the road warriors reach neither.
        await using var server = await InProcessServer.StartAsync(pki, Sites([new SiteLink("a", "b")]));
        await using var gwA = await Connect(server, "gw-a");
        await using var dave = await Connect(server, "dave");
        Assert.Equal(["198.18.30.0/24"], dave.Parameters.SplitInclude.Select(r => r.ToString()));

        gwA.Send(Packets.Udp(HostA, HostB, 40000, 7, "a to b"u8));
        Assert.Equal(HostB, new IPAddress(Packets.Take(server.Tun(), "a to b is linked and must pass").AsSpan(16, 4)));

        long refused = ServerMetrics.Drops(server.Tenant, DropReason.EastWest);
        dave.Send(Packets.Udp(dave.Address, HostA, 40000, 7, "dave to a"u8));
        dave.Send(Packets.Udp(dave.Address, gwA.Address, 40000, 7, "dave to gw-a itself"u8));
        gwA.Send(Packets.Udp(HostA, dave.Address, 40000, 7, "a to dave"u8));
        await Eventually.True(() => ServerMetrics.Drops(server.Tenant, DropReason.EastWest) == refused + 3, "the unlinked packets were not dropped as east-west");
        Assert.True(Packets.NothingArrives(server.Tun()));
    }

    [Fact]
    public async Task A_certificate_identity_carries_a_site_as_a_password_user_does()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with
        {
            AllowedOus = [InProcessPki.CertOu],
            Routes = [IpNetwork.Parse("198.18.30.0/24")],
            Sites = [new SiteConfig("cert-site", InProcessPki.CertUser, [IpNetwork.Parse("192.168.70.0/24")])],
        });
        await using var gw = await InProcessClient.ConnectAsync(server,
            server.Options(user: null, password: null) with { CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey });
        Assert.Equal("cert-site", server.Session(gw.Address)!.Site?.Name);
        var up = Packets.Udp(IPAddress.Parse("192.168.70.9"), Packets.Far4, 40000, 53, "from the certificate's site"u8);
        gw.Send(up);
        Assert.Equal(up, Packets.Take(server.Tun(), "a packet from the certificate user's site did not pass"));
    }

    public void Dispose() => _dir.Dispose();
}
