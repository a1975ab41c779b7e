using System.Text;
using Isotun.Client;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Http;

namespace Isotun.Lab;

/// <summary>
/// Opens many idle VPN sessions against a server, for measuring memory per idle session: each session is a
/// TLS connection that logs in with a client certificate and then holds a CONNECTed tunnel without a TUN.
/// It answers nothing, so the run must stay shorter than twice the tenant's DPD interval.
/// </summary>
public static class LoadClient
{
    public static async Task<int> RunAsync(ClientOptions options, int sessions, int parallel, TimeSpan hold, Action<string> say, CancellationToken ct)
    {
        var open = new List<HttpsConnection>(sessions);
        var gate = new SemaphoreSlim(parallel);
        int failures = 0;
        string? lastError = null;
        var tasks = Enumerable.Range(0, sessions).Select(async _ =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var conn = await OpenSessionAsync(options, ct);
                lock (open) open.Add(conn);
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
        try { await Task.Delay(hold, ct); } catch (OperationCanceledException) { }
        foreach (var c in open) await c.DisposeAsync();
        return failures == 0 ? 0 : 1;
    }

    private static async Task<HttpsConnection> OpenSessionAsync(ClientOptions o, CancellationToken ct)
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
            var (connected, _) = await conn.SendAsync("CONNECT", "/CSCOSSLC/tunnel", host,
                [new("Cookie", cookie), new("X-CSTP-Version", "1")], null, true, TimeSpan.FromSeconds(30), ct);
            if (connected.StatusCode != 200) throw new ClientException(ClientExitCode.ProtocolError, $"CONNECT HTTP {connected.StatusCode}");
            return conn;
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }
}
