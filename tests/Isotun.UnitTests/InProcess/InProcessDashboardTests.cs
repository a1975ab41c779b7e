using Isotun.UnitTests.Gateway;
using System.Net;
using System.Net.Sockets;
using Isotun.Admin;
using Isotun.Client;
using Isotun.Server.Configuration;
using Isotun.UnitTests.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Playwright;

namespace Isotun.UnitTests.InProcess;

/// <summary>
/// The dashboard in a real headless Chromium (Debian's, driven by Playwright): the page loads from the admin listener,
/// asks for the token without one, and with it shows a live session of a real tunnel, whose kick button ends it.
/// </summary>
[Collection(InProcessCollection.Name)]
public sealed class InProcessDashboardTests(InProcessPki pki) : IDisposable
{
    private const string Chromium = "/usr/bin/chromium";
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [SkippableFact]
    public async Task The_dashboard_shows_a_live_session_and_its_kick_button_ends_it()
    {
        Skip.IfNot(File.Exists(Chromium), $"{Chromium} is missing (Debian package chromium; .ci/install-deps installs it)");
        await using var server = await InProcessServer.StartAsync(pki);
        await using var client = await InProcessClient.ConnectAsync(server, server.Options());
        var tokenFile = _dir.File("admin.token");
        const string token = "dashboard-test-token-of-32-characters";
        Isotun.Security.SecretFile.WriteAllText(tokenFile, token + "\n", overwrite: true);
        int port = LoopbackTcp.FreePort();
        await using var api = await AdminApi.StartAsync(server.Server,
            new AdminConfig(new IPEndPoint(IPAddress.Loopback, port)) { Socket = _dir.File("admin.sock"), TokenFile = tokenFile }, NullLoggerFactory.Instance);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });

        // Without the token the page loads but asks for it.
        var anonymous = await browser.NewPageAsync();
        await anonymous.GotoAsync($"http://127.0.0.1:{port}/dashboard");
        await anonymous.Locator("#login").WaitForAsync(new() { State = WaitForSelectorState.Visible, Timeout = 20_000 });

        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 } });
        await page.GotoAsync($"http://127.0.0.1:{port}/dashboard#token={token}");
        var row = page.Locator("#sessions tbody tr", new() { HasText = client.Address.ToString() });
        await row.WaitForAsync(new() { Timeout = 20_000 });
        var cells = await row.InnerTextAsync();
        Assert.Contains(InProcessPki.User, cells);
        Assert.Contains(server.Tenant, cells);
        Assert.Contains("up", cells);
        Assert.True(await page.Locator("#tenants tbody tr", new() { HasText = server.Tenant }).CountAsync() == 1);
        // The crypto CPU share, from the server's own counters.
        await page.WaitForFunctionAsync("() => document.querySelector('#crypto').textContent.length > 0", null, new() { Timeout = 20_000 });
        Assert.Matches(@"^(TLS record work: (\d+\.\d % of the server's CPU now, )?\d+\.\d % since start|no TLS record work measured yet)$",
            await page.Locator("#crypto").InnerTextAsync());
        // The token left the address bar as soon as the page read it.
        Assert.DoesNotContain(token, page.Url);
        if (Environment.GetEnvironmentVariable("ISOTUN_DASHBOARD_SCREENSHOT") is { Length: > 0 } shot)
        {
            await page.WaitForTimeoutAsync(4500); // two refreshes: the throughput chart has points
            await page.ScreenshotAsync(new() { Path = shot, FullPage = true });
        }

        await row.Locator("button.kick").ClickAsync();
        var end = await Assert.ThrowsAsync<ClientException>(() => client.Run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(ClientExitCode.SessionEnded, end.Code);
        await page.WaitForFunctionAsync("() => document.querySelector('#sessions tbody').dataset.count === '0'", null, new() { Timeout = 20_000 });
        Assert.Empty(server.Server.Sessions.All);
    }

    [Fact]
    public async Task The_page_is_embedded_and_names_no_outside_url()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        await using var api = await AdminApi.StartAsync(server.Server, new AdminConfig(null) { Socket = _dir.File("admin.sock") }, NullLoggerFactory.Instance);
        using var admin = new AdminClient(_dir.File("admin.sock"));
        var page = await admin.GetAsync("dashboard");
        Assert.Equal(200, page.Status);
        Assert.Contains("<title>Isotun</title>", page.Text);
        Assert.DoesNotMatch(@"(src|href)\s*=\s*""https?://", page.Text);
        Assert.DoesNotContain("http://", page.Text.Replace("http://127.0.0.1", ""));
    }

    [Fact]
    public async Task No_page_of_another_site_may_frame_the_dashboard()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        int port = LoopbackTcp.FreePort();
        await using var api = await AdminApi.StartAsync(server.Server, new AdminConfig(new IPEndPoint(IPAddress.Loopback, port)), NullLoggerFactory.Instance);
        using var http = new HttpClient();
        using var page = await http.GetAsync($"http://127.0.0.1:{port}/dashboard");
        Assert.True(page.IsSuccessStatusCode, page.StatusCode.ToString());
        Assert.Contains("frame-ancestors 'none'", page.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
    }

    /// <summary>
    /// DNS rebinding: a page of another site, whose name was pointed at 127.0.0.1, reaches the admin listener through
    /// the operator's browser with its own name in the Host header; it is refused (and counted) before any page or
    /// metric. The listener's addresses and localhost pass, and so does a name listed in admin.hosts.
    /// </summary>
    [Fact]
    public async Task A_request_naming_another_host_is_refused_before_the_dashboard_or_the_metrics()
    {
        await using var server = await InProcessServer.StartAsync(pki);
        int port = LoopbackTcp.FreePort();
        await using var api = await AdminApi.StartAsync(server.Server,
            new AdminConfig(new IPEndPoint(IPAddress.Loopback, port)) { Hosts = ["vpn-1.example.net"] }, NullLoggerFactory.Instance);
        foreach (var path in new[] { "/dashboard", "/metrics", "/healthz" })
        {
            var (status, body) = await Core.Metrics.HostFilterTests.GetAsync(port, "rebound.example:" + port, path);
            Assert.Equal(421, status);
            Assert.DoesNotContain("isotun_", body);
        }
        Assert.Equal(200, (await Core.Metrics.HostFilterTests.GetAsync(port, "localhost:" + port, "/dashboard")).Status);
        Assert.Equal(200, (await Core.Metrics.HostFilterTests.GetAsync(port, "vpn-1.example.net:" + port)).Status);
        var (_, metrics) = await Core.Metrics.HostFilterTests.GetAsync(port, "127.0.0.1:" + port);
        Assert.Contains("isotun_admin_requests_total{result=\"wrong-host\"} 3", metrics);
    }
}
