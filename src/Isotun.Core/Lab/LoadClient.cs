using System.Diagnostics;
using System.Globalization;
using System.Text;
using Isotun.Client;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Http;

namespace Isotun.Lab;

/// <summary>
/// Opens many VPN sessions against a server, for measuring memory per idle session and, with a reconnect storm,
/// how fast they all come back: each session is a TLS connection that logs in with a client certificate and then holds
/// a CONNECTed tunnel without a TUN. Without <see cref="LoadTraffic"/> it answers nothing, so the run must stay shorter
/// than twice the tenant's DPD interval; with it, the sessions move data and answer DPD for as long as the run.
/// </summary>
public static class LoadClient
{
    private readonly record struct Session(HttpsConnection Connection, string Cookie, TunnelParameters Tunnel);

    public static async Task<int> RunAsync(ClientOptions options, int sessions, int parallel, TimeSpan hold, Action<string> say, CancellationToken ct,
        bool reconnectStorm = false, (int PacketsPerSecond, int PacketBytes)? traffic = null)
    {
        var open = new List<Session>(sessions);
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
        if (traffic is var (pps, bytes))
            failures += await new LoadTraffic(pps, bytes).RunAsync(open.Select(s => (s.Connection, s.Tunnel)).ToList(), hold, say, ct);
        else
            try { await Task.Delay(hold, ct); } catch (OperationCanceledException) { }
        foreach (var s in open) await s.Connection.DisposeAsync();
        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// Logs in <paramref name="count"/> times, one after another, <paramref name="interval"/> apart: each a new connection
    /// (TLS, certificate login, CONNECT), timed until the CONNECT's answer, then logged off (DISCONNECT). One login
    /// before them warms this process's own code and is reported apart. Says each time and the slowest.
    /// </summary>
    public static async Task<int> TimeLoginsAsync(ClientOptions options, int count, TimeSpan interval, Action<string> say, CancellationToken ct)
    {
        var times = new List<double>(count);
        int failures = 0;
        for (int i = 0; i <= count && !ct.IsCancellationRequested; i++)
        {
            var clock = Stopwatch.StartNew();
            string what = i == 0 ? "warm-up login" : $"login {i}";
            try
            {
                var session = await OpenSessionAsync(options, ct);
                double ms = clock.Elapsed.TotalMilliseconds;
                await VpnClient.SendByeAsync(session.Connection);
                await session.Connection.DisposeAsync();
                if (i > 0) times.Add(ms);
                say(string.Create(CultureInfo.InvariantCulture, $"{what}: {ms:0.0} ms"));
            }
            catch (Exception e) when (e is ClientException or IOException)
            {
                if (i > 0) failures++;
                say(string.Create(CultureInfo.InvariantCulture, $"{what}: failed after {clock.Elapsed.TotalMilliseconds:0.0} ms: {e.Message}"));
            }
            if (i < count) try { await Task.Delay(interval, ct); } catch (OperationCanceledException) { }
        }
        say(times.Count == 0 ? $"logins: none of {count} completed"
            : string.Create(CultureInfo.InvariantCulture, $"logins: {times.Count} of {count} completed, max {times.Max():0.0} ms, mean {times.Average():0.0} ms, failed {failures}"));
        return failures == 0 && times.Count == count ? 0 : 1;
    }

    /// <summary>
    /// A reconnect storm: every session loses its connection at once (closed here, as when a node or a link goes), and
    /// all come back together with their cookies: TLS, then CONNECT, no login. Says how long until the last one was back.
    /// </summary>
    private static async Task<int> StormAsync(ClientOptions options, List<Session> open, int parallel, Action<string> say, CancellationToken ct)
    {
        var cookies = open.Select(o => o.Cookie).ToList();
        foreach (var s in open) await s.Connection.DisposeAsync();
        open.Clear();
        var gate = new SemaphoreSlim(parallel);
        int failures = 0;
        string? lastError = null;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(cookies.Select(async cookie =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var conn = await HttpsConnection.OpenAsync(options, ct);
                try
                {
                    var tunnel = await ConnectAsync(conn, options, cookie, ct);
                    lock (open) open.Add(new(conn, cookie, tunnel));
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
        say(string.Create(CultureInfo.InvariantCulture,
            $"reconnect storm: {open.Count} of {cookies.Count} sessions back with their cookies in {clock.Elapsed.TotalSeconds:0.00} s, failed={failures}{(lastError is null ? "" : $" last error: {lastError}")}"));
        return failures;
    }

    private static async Task<TunnelParameters> ConnectAsync(HttpsConnection conn, ClientOptions o, string cookie, CancellationToken ct)
    {
        var (connected, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", AuthClient.HostHeader(o.Server),
            [new("Cookie", cookie), new("X-CSTP-Version", "1")], null, true, TimeSpan.FromSeconds(30), ct);
        if (connected.StatusCode != 200) throw new ClientException(ClientExitCode.ProtocolError, $"CONNECT HTTP {connected.StatusCode}");
        return TunnelParameters.Parse(connected);
    }

    private static async Task<Session> OpenSessionAsync(ClientOptions o, CancellationToken ct)
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
            return new(conn, cookie, await ConnectAsync(conn, o, cookie, ct));
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }
}
