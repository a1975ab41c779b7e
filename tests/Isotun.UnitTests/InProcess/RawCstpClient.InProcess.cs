using Isotun.Client;

namespace Isotun.TestSupport;

/// <summary>The in-process tests open a raw client over loopback TLS, as the real client connects.</summary>
public sealed partial class RawCstpClient
{
    /// <summary>
    /// Logs in as the real client does (or reuses <paramref name="cookie"/>), then CONNECTs like a stock client on a
    /// connection of its own; <see cref="Status"/> says how the CONNECT went.
    /// </summary>
    public static async Task<RawCstpClient> ConnectAsync(ClientOptions options, string? cookie = null, string? askAddress = null, params (string Name, string Value)[] extraHeaders)
    {
        using var cts = new CancellationTokenSource(Guard);
        cookie ??= await AuthClient.LoginAsync(options, cts.Token);
        var conn = await HttpsConnection.OpenAsync(options, cts.Token);
        var client = new RawCstpClient(conn.Stream, conn, AuthClient.HostHeader(options.Server));
        try
        {
            await client.TryConnectTunnelAsync(cookie, askAddress: askAddress, headers: extraHeaders);
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }
}
