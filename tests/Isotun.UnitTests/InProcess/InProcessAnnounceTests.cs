using Isotun.Server.Configuration;

namespace Isotun.UnitTests.InProcess;

/// <summary>With an uplink that answers ARP for its clients, a client's address is announced when it attaches and withdrawn when it leaves.</summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessAnnounceTests(InProcessPki pki)
{
    [Fact]
    public async Task A_clients_address_is_announced_on_attach_and_withdrawn_when_its_tunnel_ends()
    {
        await using var server = await InProcessServer.StartAsync(pki, t => t with
        {
            Uplink = new UplinkConfig("link", null, "up0", null, "198.18.68.11/24", null, null) { ProxyArp = true },
        });
        var client = await InProcessClient.ConnectAsync(server, server.Options());
        var address = client.Address;
        await Eventually.True(() => server.Network().Announced.Contains((address, true)), "the address was not announced");
        await client.StopAsync();
        await client.DisposeAsync();
        await Eventually.True(() => server.Network().Announced.Contains((address, false)), "the address was not withdrawn");
        Assert.Equal([(address, true), (address, false)], server.Network().Announced.Where(a => a.Address.Equals(address)));
    }

    [Fact]
    public async Task Without_proxy_arp_nothing_is_announced()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        await Task.Delay(200);
        Assert.Empty(server.Network().Announced);
    }
}
