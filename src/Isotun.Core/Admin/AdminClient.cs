using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Isotun.Server.Configuration;

namespace Isotun.Admin;

/// <summary>What an admin request answered: the HTTP status and the JSON (or text) body.</summary>
public sealed record AdminReply(int Status, JsonElement? Json, string Text)
{
    public bool Ok => Status is >= 200 and < 300;

    /// <summary>The server's own words for a refusal: its {"error": …}, else the first line of a text answer (a proxy's or
    /// the host filter's, bounded and printable), else "no reason given".</summary>
    public string Error => Json is { ValueKind: JsonValueKind.Object } j && j.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String
        ? e.GetString()!
        : FirstLine(Text) is { Length: > 0 } line ? line : "no reason given";

    private static string FirstLine(string text)
    {
        var line = text.TrimStart().Split('\n', 2)[0].TrimEnd();
        if (line.Length > 200) line = line[..200];
        return new string([.. line.Select(c => char.IsControl(c) ? '?' : c)]);
    }
}

/// <summary>
/// The client side of the admin API, for the CLI (<c>isotun status|sessions|kick|revoke|reload|unban</c>) and tests: over
/// the server's unix socket, or over HTTP with the bearer token.
/// </summary>
public sealed class AdminClient : IDisposable
{
    private readonly HttpClient _http;

    public AdminClient(string target, string? token = null, TimeSpan? timeout = null)
    {
        Target = target;
        if (target.StartsWith("http://", StringComparison.Ordinal) || target.StartsWith("https://", StringComparison.Ordinal))
        {
            _http = new HttpClient { BaseAddress = new Uri(target.TrimEnd('/') + "/") };
        }
        else
        {
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (_, ct) =>
                {
                    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await socket.ConnectAsync(new UnixDomainSocketEndPoint(target), ct).ConfigureAwait(false);
                        return new NetworkStream(socket, ownsSocket: true);
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                },
            };
            _http = new HttpClient(handler) { BaseAddress = new Uri("http://admin/") };
        }
        _http.Timeout = timeout ?? TimeSpan.FromSeconds(30);
        if (token is not null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>The socket path or URL this client talks to.</summary>
    public string Target { get; }

    /// <summary>
    /// Where a server's admin plane is, from its config file: the unix socket when it exists, else TCP with the token of
    /// <c>admin.token-file</c> (read here; this process must be allowed to read it). Null with the reason when neither.
    /// Only the admin settings must be right: when the rest of the file has errors the server is still reached (it runs
    /// on the config it has, and a reload lists every error), and <paramref name="warning"/> says so.
    /// </summary>
    public static AdminClient? FromConfig(string configPath, out string? problem, out string? warning)
    {
        problem = warning = null;
        var loaded = ServerConfigLoader.Load(configPath);
        var admin = loaded.Config?.Admin;
        if (admin is null)
        {
            // The file has errors: its admin settings alone may still say where the server is.
            (admin, var errors) = ServerConfigLoader.LoadAdmin(configPath);
            if (admin is null)
            {
                problem = $"{configPath}: {errors.Count} error(s) where the admin settings are read: " + string.Join("; ", errors.Take(5));
                return null;
            }
            warning = $"{configPath} has {loaded.Errors.Count} error(s) (first: {loaded.Errors[0]}); a running server keeps the config it has. `isotun config validate {configPath}` lists them all.";
        }
        if (admin.Socket is { } socket && File.Exists(socket)) return new AdminClient(socket);
        if (admin.Listen is { } tcp && admin.TokenFile is { } tokenFile)
            return new AdminClient($"http://{tcp}", File.ReadAllText(tokenFile).Trim());
        problem = admin.Socket is { } missing
            ? $"the admin socket {missing} does not exist: is the server running?"
            : "the config has no admin socket, and no admin.token-file for TCP";
        return null;
    }

    public Task<AdminReply> GetAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<AdminReply> PostAsync(string path, object? body = null, CancellationToken ct = default) => SendAsync(HttpMethod.Post, path, body, ct);

    public Task<AdminReply> DeleteAsync(string path, CancellationToken ct = default) => SendAsync(HttpMethod.Delete, path, null, ct);

    public async Task<AdminReply> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null) request.Content = JsonContent.Create(body, options: new JsonSerializerOptions(JsonSerializerDefaults.Web));
        using var response = await _http.SendAsync(request, ct).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        JsonElement? json = null;
        if (response.Content.Headers.ContentType?.MediaType == "application/json" && text.Length > 0)
        {
            try
            {
                using var doc = JsonDocument.Parse(text);
                json = doc.RootElement.Clone();
            }
            catch (JsonException)
            {
            }
        }
        return new AdminReply((int)response.StatusCode, json, text);
    }

    public void Dispose() => _http.Dispose();
}
