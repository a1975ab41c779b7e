using System.Text;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Http;

namespace Isotun.Client;

/// <summary>
/// The XML "aggregate auth" exchange, filled in generically: whatever form the server shows (one form
/// with user and password like Isotun, or ocserv's user-then-password steps), the known fields are
/// answered until the server sets the `webvpn` cookie.
/// </summary>
public static class AuthClient
{
    private const int MaxRounds = 8;
    private const string Version = "v9.01-isotun";

    public static async Task<string> LoginAsync(ClientOptions o, CancellationToken ct)
    {
        await using var conn = await HttpsConnection.OpenAsync(o, ct).ConfigureAwait(false);
        string host = HostHeader(o.Server);
        string target = string.IsNullOrEmpty(o.Server.PathAndQuery) ? "/" : o.Server.PathAndQuery;
        string? context = null;
        bool passwordSent = false;
        var xml = AuthXml.BuildInit(Version, o.Server.GetLeftPart(UriPartial.Path), o.Group);
        for (int round = 0; round < MaxRounds; round++)
        {
            var headers = new List<KeyValuePair<string, string>>
            {
                new("User-Agent", o.UserAgent),
                new("Accept", "*/*"),
                new("X-Transcend-Version", "1"),
                new("X-Aggregate-Auth", "1"),
                new("X-Support-HTTP-Auth", "true"),
                new("Content-Type", "application/xml; charset=utf-8"),
            };
            if (context is not null) headers.Add(new("Cookie", $"webvpncontext={context}"));
            var (head, body) = await conn.SendAsync("POST", target, host, headers, Encoding.UTF8.GetBytes(xml), false, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);

            foreach (var sc in head.Headers.GetAll("Set-Cookie"))
            {
                if (!SessionCookie.TryParseSetCookie(sc, out var name, out var value)) continue;
                if (name == SessionCookie.Name && !string.IsNullOrEmpty(value)) return Checked(value);
                // ocserv keys the steps of its login on this cookie, and clears it with an empty value.
                if (name == "webvpncontext") context = string.IsNullOrEmpty(value) ? null : value;
            }
            var parsed = AuthXml.TryParseServerMessage(body, out var msg);
            if (head.StatusCode == 401 || head.StatusCode == 403)
                throw new ClientException(ClientExitCode.AuthFailed, $"login refused by the server: {ErrorOf(msg, head)}");
            if (head.StatusCode != 200)
                throw new ClientException(ClientExitCode.ProtocolError, $"server answered the login with HTTP {head.StatusCode} {Bounded(head.Reason)}");
            if (parsed != AuthXmlResult.Ok || msg is null)
                throw new ClientException(ClientExitCode.ProtocolError, $"server sent an unreadable login reply ({parsed})");
            if (msg.SessionToken is { Length: > 0 } token) return Checked(token);
            if (msg.Type == "complete")
                throw new ClientException(ClientExitCode.ProtocolError, "server completed the login without giving a session cookie");
            if (msg.ClientCertRequest)
                throw new ClientException(ClientExitCode.AuthFailed, o.CertificateFile is null
                    ? "the server asks for a client certificate (--certificate/--sslkey)"
                    : "the server did not accept the client certificate");
            var form = msg.Form ?? throw new ClientException(ClientExitCode.ProtocolError, "server sent neither a login form nor a cookie");
            if (form.Inputs.Count == 0 && form.Select is null)
                throw new ClientException(ClientExitCode.AuthFailed, $"login refused by the server: {form.Error ?? form.Message ?? "no reason given"}");
            if (passwordSent && form.Error is not null)
                throw new ClientException(ClientExitCode.AuthFailed, $"login refused by the server: {form.Error}");
            // ocserv answers a wrong password with 200 and the password form again ("Login failed." in the
            // message, no <error>); sending the same password again would only burn its retries.
            if (passwordSent && form.Inputs.Any(i => i.Type == "password"))
                throw new ClientException(ClientExitCode.AuthFailed, $"login refused by the server: {FirstLine(form.Message) ?? "it asked for the password again"}");

            var fields = new List<KeyValuePair<string, string>>();
            foreach (var input in form.Inputs)
            {
                switch (input.Type)
                {
                    case "password":
                        if (o.Password is null)
                            throw new ClientException(ClientExitCode.AuthFailed, $"the server asks for '{input.Label.TrimEnd(':')}' but no password was given (--password-file or stdin)");
                        fields.Add(new(input.Name, o.Password));
                        passwordSent = true;
                        break;
                    case "text":
                        if (input.Name is "username" or "user")
                        {
                            if (o.User is null) throw new ClientException(ClientExitCode.AuthFailed, "the server asks for a user name but none was given (--user)");
                            fields.Add(new(input.Name, o.User));
                        }
                        break;
                }
            }
            string? group = o.Group;
            if (form.Select is { } select)
            {
                var chosen = group is null ? select.Options.FirstOrDefault()
                    : select.Options.FirstOrDefault(x => x.Value == group) ?? select.Options.FirstOrDefault(x => string.Equals(x.Label, group, StringComparison.OrdinalIgnoreCase));
                if (chosen is null)
                    throw new ClientException(ClientExitCode.AuthFailed, $"group '{group}' is not offered by the server");
                fields.Add(new(select.Name, chosen.Value));
                group = chosen.Value;
            }
            target = ResolveAction(o.Server, form.Action, target);
            xml = AuthXml.BuildReply(Version, fields, group, msg.Opaque);
        }
        throw new ClientException(ClientExitCode.ProtocolError, $"login did not finish within {MaxRounds} rounds");
    }

    public static string HostHeader(Uri u) => u.IsDefaultPort ? u.Host : $"{u.Host}:{u.Port}";

    private static string ResolveAction(Uri server, string action, string current)
    {
        if (string.IsNullOrEmpty(action)) return current;
        if (Uri.TryCreate(server, action, out var abs) && abs.Host == server.Host && abs.Port == server.Port)
            return abs.PathAndQuery;
        throw new ClientException(ClientExitCode.ProtocolError, "server's login form points to another host");
    }

    private static string ErrorOf(ServerAuthMessage? msg, HttpResponseHead head) =>
        msg?.Form?.Error ?? head.Headers.Get("X-Reason") ?? msg?.Form?.Message ?? $"HTTP {head.StatusCode}";

    private static string Bounded(string s) => s.Length > 60 ? s[..60] : s;

    /// <summary>The server's session cookie, if it is a cookie value at all (<see cref="SessionCookie.IsValidValue"/>).</summary>
    private static string Checked(string cookie) => SessionCookie.IsValidValue(cookie) ? cookie
        : throw new ClientException(ClientExitCode.ProtocolError,
            $"server sent a session cookie that is not a cookie value ({cookie.Length} characters; at most {SessionCookie.MaxValueLength} of printable ASCII without space, quote, comma, semicolon or backslash)");

    private static string? FirstLine(string? text) =>
        text?.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() is { Length: > 0 } line ? Bounded(line) : null;
}
