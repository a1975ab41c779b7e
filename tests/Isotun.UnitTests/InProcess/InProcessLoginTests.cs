using System.Net;
using Isotun.Client;
using Isotun.Metrics;
using Isotun.Protocol.Addressing;

namespace Isotun.UnitTests.InProcess;

/// <summary>Logging in and CONNECT, client and server in one process over TLS on 127.0.0.1.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessLoginTests(InProcessPki pki)
{
    [Fact]
    public async Task A_password_login_and_connect_give_an_address_from_the_tenant_pool()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Mtu = 1400 });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());

        Assert.True(IpNetwork.TryParse("10.77.0.0/24", out var pool));
        Assert.True(pool.Contains(client.Address), $"{client.Address} is not in the pool");
        Assert.NotEqual(IPAddress.Parse("10.77.0.1"), client.Address);
        Assert.Equal(1400, client.Parameters.Mtu);
        Assert.Equal(1400, client.Tun.Queues[0].Mtu);
        var session = Assert.Single(server.Server.Sessions.All);
        Assert.Equal(InProcessPki.User, session.User);
        Assert.Equal(server.Tenant, session.Tenant.Name);
        Assert.Equal(1, ServerMetrics.Auth(server.Tenant, AuthOutcome.Ok));
    }

    [Fact]
    public async Task A_certificate_login_connects_without_a_password()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { AllowedOus = [InProcessPki.CertOu] });
        var options = server.Options(user: null, password: null) with { CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey };
        await using var client = await InProcessClient.ConnectAsync(server, options);

        var session = Assert.Single(server.Server.Sessions.All);
        Assert.Equal(InProcessPki.CertUser, session.User);
        Assert.Equal(client.Address, session.Address);
    }

    [Fact]
    public async Task A_certificate_of_another_tenant_is_refused()
    {
        // The certificate's OU names a tenant this one does not accept.
        await using var server = await InProcessServer.StartAsync(pki);
        var options = server.Options(user: null, password: null) with { CertificateFile = pki.ClientCertificate, KeyFile = pki.ClientKey };
        await using var client = InProcessClient.Start(options);

        var e = await Assert.ThrowsAsync<ClientException>(() => client.Run);
        Assert.Equal(ClientExitCode.AuthFailed, e.Code);
        Assert.Empty(server.Server.Sessions.All);
    }

    [Fact]
    public async Task A_wrong_password_is_refused_and_counted()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = InProcessClient.Start(server.Options(password: "wrong"));

        var e = await Assert.ThrowsAsync<ClientException>(() => client.Run);
        Assert.Equal(ClientExitCode.AuthFailed, e.Code);
        Assert.Empty(server.Server.Sessions.All);
        Assert.Equal(1, ServerMetrics.Auth(server.Tenant, AuthOutcome.BadPassword));
        Assert.Null(client.Network.Tun);
    }

    [Fact]
    public async Task An_unknown_user_is_refused()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = InProcessClient.Start(server.Options(user: "mallory", password: "guess"));

        var e = await Assert.ThrowsAsync<ClientException>(() => client.Run);
        Assert.Equal(ClientExitCode.AuthFailed, e.Code);
        Assert.Empty(server.Server.Sessions.All);
    }

    [Fact]
    public async Task A_user_of_one_tenant_cannot_log_into_another()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t, t => t with { PasswordFile = pki.OtherPasswords });
        await using var intruder = InProcessClient.Start(server.Options(server.Tenants[1]));

        var e = await Assert.ThrowsAsync<ClientException>(() => intruder.Run);
        Assert.Equal(ClientExitCode.AuthFailed, e.Code);
        Assert.Empty(server.Server.Sessions.All);

        // The other tenant's own user gets in, into that tenant.
        await using var own = await InProcessClient.ConnectAsync(server, server.Options(server.Tenants[1], InProcessPki.OtherUser, InProcessPki.OtherPassword), tenant: server.Tenants[1]);
        Assert.Equal(server.Tenants[1], Assert.Single(server.Server.Sessions.All).Tenant.Name);
        Assert.StartsWith("10.77.1.", own.Address.ToString());
    }

    [Fact]
    public async Task Two_sessions_of_one_user_get_two_addresses()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var first = await InProcessClient.ConnectAsync(server, server.Options());
        await using var second = await InProcessClient.ConnectAsync(server, server.Options());

        Assert.NotEqual(first.Address, second.Address);
        Assert.Equal(2, server.Server.Sessions.All.Count(s => s.Connection is not null));
    }

    [Fact]
    public async Task A_dual_stack_tenant_gives_an_ipv6_address_as_well()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with { Pool6 = IpNetwork.Parse("fd77::/64") });
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());

        Assert.NotNull(client.Parameters.Address6);
        Assert.True(IpNetwork.TryParse("fd77::/64", out var pool6));
        Assert.True(pool6.Contains(client.Parameters.Address6!));
    }

    [Fact]
    public async Task The_server_makes_no_namespace_and_tears_its_memory_network_down_on_stop()
    {
        var server = await InProcessServer.StartAsync(pki);
        Assert.Null(server.Server.Sessions.All.FirstOrDefault());
        var tun = server.Tun();
        Assert.False(tun.Queues[0].IsClosed);
        await server.DisposeAsync();
        Assert.True(tun.Queues[0].IsClosed);
    }
}
