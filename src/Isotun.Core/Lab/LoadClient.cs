using System.Text;
using Isotun.Client;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Http;

namespace Isotun.Lab;

/// <summary>
/// Opens many idle VPN sessions against a server, for measuring memory per idle session and, with a reconnect storm,
/// how fast they all come back: each session is a TLS connection that logs in with a client certificate and then holds
/// a CONNECTed tunnel without a TUN.
/// It answers nothing, so the run must stay shorter than twice the tenant's DPD interval.
/// </summary>
public static class LoadClient
{
    public static async Task<int> RunAsync(ClientOptions options, int sessions, int parallel, TimeSpan hold, Action<string> say, CancellationToken ct,
        bool reconnectStorm = false)
    {
        var open = new List<(HttpsConnection Connection, string Cookie)>(sessions);
        var gate = new SemaphoreSlim(parallel);
        int failures = 0;
        string? lastError = null;
        var tasks = Enumerable.Range(0, sessions).Select(async _ =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var session = await OpenSessionAsync(options, ct);
                lock (open) open.Add(session);
            }
            catch (Exception e) when (e is ClientException or IOException)
            {
                Interlocked.Increment(ref failures);
                lastError = e.Message;
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(tasks);
        say($"sessions={open.Count} failed={failures}{(lastError is null ? "" : $" last error: {lastError}")}");
        if (reconnectStorm && open.Count > 0) failures += await StormAsync(options, open, parallel, say, ct);
        try { await Task.Delay(hold, ct); } catch (OperationCanceledException) { }
        foreach (var (c, _) in open) await c.DisposeAsync();
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// A reconnect storm: every session loses its connection at once (closed here, as when a node or a link goes), and
    /// all come back together with their cookies: TLS, then CONNECT, no login. Says how long until the last one was back.
    /// </summary>
    private static async Task<int> StormAsync(ClientOptions options, List<(HttpsConnection Connection, string Cookie)> open, int parallel, Action<string> say, CancellationToken ct)
    {
        var cookies = open.Select(o => o.Cookie).ToList();
        foreach (var (c, _) in open) await c.DisposeAsync();
        open.Clear();
        var gate = new SemaphoreSlim(parallel);
        int failures = 0;
        string? lastError = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await Task.WhenAll(cookies.Select(async cookie =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var conn = await HttpsConnection.OpenAsync(options, ct);
                try
                {
                    await ConnectAsync(conn, options, cookie, ct);
                    lock (open) open.Add((conn, cookie));
                }
                catch
                {
                    await conn.DisposeAsync();
                    throw;
                }
            }
            catch (Exception e) when (e is ClientException or IOException)
            {
                Interlocked.Increment(ref failures);
                lastError = e.Message;
            }
            finally
            {
                gate.Release();
            }
        }));
        say(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"reconnect storm: {open.Count} of {cookies.Count} sessions back with their cookies in {clock.Elapsed.TotalSeconds:0.00} s, failed={failures}{(lastError is null ? "" : $" last error: {lastError}")}"));
        return failures;
    }

    private static async Task ConnectAsync(HttpsConnection conn, ClientOptions o, string cookie, CancellationToken ct)
    {
        var (connected, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", AuthClient.HostHeader(o.Server),
            [new("Cookie", cookie), new("X-CSTP-Version", "1")], null, true, TimeSpan.FromSeconds(30), ct);
        if (connected.StatusCode != 200) throw new ClientException(ClientExitCode.ProtocolError, $"CONNECT HTTP {connected.StatusCode}");
    }

    private static async Task<(HttpsConnection, string)> OpenSessionAsync(ClientOptions o, CancellationToken ct)
    {
        var conn = await HttpsConnection.OpenAsync(o, ct);
        try
        {
            string host = AuthClient.HostHeader(o.Server);
            var init = Encoding.UTF8.GetBytes(AuthXml.BuildInit("v9.01-isotun-load", o.Server.ToString(), o.Group));
            var (head, _) = await conn.SendAsync("POST", o.Server.PathAndQuery, host,
                [new("X-Aggregate-Auth", "1"), new("Content-Type", "application/xml")], init, false, TimeSpan.FromSeconds(30), ct);
            string? cookie = null;
            foreach (var setCookie in head.Headers.GetAll("Set-Cookie"))
                if (SessionCookie.TryParseSetCookie(setCookie, out var name, out var value) && name == SessionCookie.Name && value.Length > 0)
                {
                    cookie = SessionCookie.CookieValue(value);
                    break;
                }
            if (cookie is null) throw new ClientException(ClientExitCode.AuthFailed, $"no cookie (HTTP {head.StatusCode})");
            await ConnectAsync(conn, o, cookie, ct);
            return (conn, cookie);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }
}
