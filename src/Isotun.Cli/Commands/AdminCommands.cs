using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Isotun.Admin;
using Isotun.Security;

namespace Isotun.Cli.Commands;

/// <summary>
/// The occtl of Isotun: <c>isotun status|sessions|kick|revoke|reload|unban</c> talk to a running server's admin API,
/// found through <c>--config FILE</c> (its <c>admin</c> settings) or <c>--admin SOCKET|URL</c>. Human tables by default,
/// <c>--json</c> for machines. Exit codes: 0 done, 1 the server could not be reached or refused, 2 usage, or (reload) a
/// config the server refused.
/// </summary>
public static class AdminCommands
{
    private static readonly Option<string?> ConfigOption = new("--config", "-c") { Description = "The server's config file: its admin socket (or TCP listener and token file) is used" };
    private static readonly Option<string?> AdminOption = new("--admin") { Description = "The admin socket path, or http://HOST:PORT (with --token-file)" };
    private static readonly Option<string?> TokenOption = new("--token-file") { Description = "File holding the bearer token, for --admin http://…" };
    private static readonly Option<bool> JsonOption = new("--json") { Description = "Print the API's JSON" };

    public static IEnumerable<Command> Create()
    {
        var status = Verb("status", "Show the server's state: sessions, tenants, bans, readiness");
        status.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            var r = await client.GetAsync("api/v1/status", ct);
            if (!r.Ok) return Fail(r);
            if (json) return Print(r);
            foreach (var p in r.Json!.Value.EnumerateObject()) Console.WriteLine($"{p.Name,-20} {Scalar(p.Value)}");
            return 0;
        }));

        var tenantFilter = new Option<string?>("--tenant") { Description = "Only this tenant's sessions" };
        var userFilter = new Option<string?>("--user") { Description = "Only this user's sessions" };
        var clusterScope = new Option<bool>("--cluster") { Description = "Every node's sessions (a cluster node only; refreshed every 2 s); kick one with its full id" };
        var sessions = Verb("sessions", "List sessions (connected, or waiting for their client to come back)", tenantFilter, userFilter, clusterScope);
        sessions.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            var query = new List<string>();
            if (parse.GetValue(tenantFilter) is { } t) query.Add("tenant=" + Uri.EscapeDataString(t));
            if (parse.GetValue(userFilter) is { } u) query.Add("user=" + Uri.EscapeDataString(u));
            if (parse.GetValue(clusterScope)) query.Add("scope=cluster");
            var r = await client.GetAsync("api/v1/sessions" + (query.Count > 0 ? "?" + string.Join('&', query) : ""), ct);
            if (!r.Ok) return Fail(r);
            if (json) return Print(r);
            if (parse.GetValue(clusterScope))
            {
                Table(["ID", "NODE", "TENANT", "USER", "ADDRESS", "SOURCE", "STATE", "SINCE"], r.Json!.Value.EnumerateArray().Select(s => new[]
                {
                    Str(s, "id"), Str(s, "node"), Str(s, "tenant"), Str(s, "user"), Str(s, "address"), Str(s, "source"),
                    s.GetProperty("connected").GetBoolean() ? "up" : "waiting", Since(s.GetProperty("since").GetDateTimeOffset()),
                }).ToList());
                return 0;
            }
            var rows = r.Json!.Value.EnumerateArray().Select(s => new[]
            {
                Str(s, "id")[..8], Str(s, "tenant"), Str(s, "user"), Str(s, "address"), Str(s, "source"),
                s.GetProperty("connected").GetBoolean() ? "up" : "waiting", s.GetProperty("queues").GetInt32().ToString(CultureInfo.InvariantCulture),
                Bytes(s.GetProperty("rxBytes").GetInt64()), Bytes(s.GetProperty("txBytes").GetInt64()), Since(s.GetProperty("since").GetDateTimeOffset()),
                s.TryGetProperty("site", out var site) && site.ValueKind == JsonValueKind.Object ? Str(site, "name") : "-", Str(s, "clientVersion"),
            }).ToList();
            Table(["ID", "TENANT", "USER", "ADDRESS", "SOURCE", "STATE", "QUEUES", "RX", "TX", "SINCE", "SITE", "CLIENT"], rows);
            return 0;
        }));

        var siteTenant = new Option<string?>("--tenant") { Description = "Only this tenant's sites" };
        var sites = Verb("sites", "List sites (networks behind users' clients): their subnets, the session carrying them, bytes from and to them", siteTenant);
        sites.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            var r = await client.GetAsync("api/v1/tenants", ct);
            if (!r.Ok) return Fail(r);
            var wanted = parse.GetValue(siteTenant);
            var tenants = r.Json!.Value.EnumerateArray().Where(t => wanted is null || Str(t, "name") == wanted).ToList();
            if (wanted is not null && tenants.Count == 0)
            {
                Console.Error.WriteLine($"isotun sites: no tenant {wanted}");
                return 1;
            }
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(tenants.ToDictionary(t => Str(t, "name"), t => t.GetProperty("sites")), new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            var rows = tenants.SelectMany(t => t.GetProperty("sites").EnumerateArray().Select(s => new[]
            {
                Str(t, "name"), Str(s, "name"), Str(s, "user"), string.Join(",", s.GetProperty("subnets").EnumerateArray().Select(n => n.GetString())),
                Str(s, "session") is { Length: >= 8 } id ? id[..8] : "-", Bytes(s.GetProperty("rxBytes").GetInt64()), Bytes(s.GetProperty("txBytes").GetInt64()),
            })).ToList();
            Table(["TENANT", "SITE", "USER", "SUBNETS", "SESSION", "RX", "TX"], rows, empty: "(no sites)");
            return 0;
        }));

        var id = new Argument<string>("ID") { Description = "The session's id: 32 hex digits, or the 8 the logs and `isotun sessions` show" };
        var kick = Verb("kick", "End a session now: its connections close and its cookie is refused");
        kick.Arguments.Add(id);
        kick.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            var r = await client.DeleteAsync("api/v1/sessions/" + Uri.EscapeDataString(parse.GetValue(id)!), ct);
            if (!r.Ok) return Fail(r);
            if (json) return Print(r);
            Console.WriteLine($"session {parse.GetValue(id)} kicked");
            return 0;
        }));

        var tenant = new Option<string>("--tenant") { Description = "The user's tenant", Required = true };
        var user = new Option<string>("--user") { Description = "The user", Required = true };
        var enable = new Option<bool>("--enable") { Description = "Lift an earlier revocation instead: the user may log in again; cookies from before stay refused" };
        var revoke = Verb("revoke", "Revoke a user: every session ends, every cookie dies, logins are refused until --enable", tenant, user, enable);
        revoke.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            string t = parse.GetValue(tenant)!, u = parse.GetValue(user)!;
            bool on = parse.GetValue(enable);
            var r = await client.PostAsync($"api/v1/tenants/{Uri.EscapeDataString(t)}/users/{Uri.EscapeDataString(u)}/{(on ? "enable" : "revoke")}", ct: ct);
            if (!r.Ok) return Fail(r);
            if (json) return Print(r);
            Console.WriteLine(on
                ? (r.Json!.Value.GetProperty("wasRevoked").GetBoolean() ? $"{t}/{u} enabled" : $"{t}/{u} was not revoked")
                : $"{t}/{u} revoked; {r.Json!.Value.GetProperty("sessionsEnded").GetInt32()} session(s) ended");
            return 0;
        }));

        var reload = Verb("reload", "Read the config file again (all or nothing); every reason is printed when refused");
        reload.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            var r = await client.PostAsync("api/v1/reload", ct: ct);
            if (r.Status is not (200 or 409)) return Fail(r);
            if (json) Print(r);
            else foreach (var line in r.Json!.Value.GetProperty("report").EnumerateArray()) Console.WriteLine(line.GetString());
            return r.Status == 200 ? 0 : 2;
        }));

        var source = new Option<string?>("--source") { Description = "The source address whose login ban to lift" };
        var banTenant = new Option<string?>("--tenant") { Description = "With --user: the tenant (group) of the user; without it, the user's bans in every tenant are lifted" };
        var banUser = new Option<string?>("--user") { Description = "The user whose login ban to lift" };
        var unban = Verb("unban", "Lift a login ban of a source address or of a user", source, banTenant, banUser);
        unban.SetAction((parse, ct) => RunAsync(parse, async (client, json) =>
        {
            if (parse.GetValue(source) is null && parse.GetValue(banUser) is null)
            {
                Console.Error.WriteLine("isotun unban: give --source ADDRESS, or --user USER (and --tenant TENANT)");
                return 2;
            }
            var r = await client.PostAsync("api/v1/unban", new UnbanRequest(parse.GetValue(source), parse.GetValue(banTenant), parse.GetValue(banUser)), ct);
            if (!r.Ok) return Fail(r);
            if (json) return Print(r);
            Console.WriteLine(r.Json!.Value.GetProperty("unbanned").GetBoolean() ? "ban lifted" : "no such ban");
            return 0;
        }));

        var tokenFile = new Option<string>("--file") { Description = "Where to write the token (mode 0600)", Required = true };
        var force = new Option<bool>("--force") { Description = "Replace an existing token file" };
        var token = new Command("token", "Write a new random bearer token for the admin API over TCP (admin.token-file)") { tokenFile, force };
        token.SetAction(parse =>
        {
            var path = parse.GetValue(tokenFile)!;
            if (File.Exists(path) && !parse.GetValue(force))
            {
                Console.Error.WriteLine($"isotun admin token: {path} exists; --force replaces it");
                return 2;
            }
            try
            {
                SecretFile.WriteAllText(path, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) + "\n", overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"isotun admin token: cannot write {path}: {e.Message}");
                return 1;
            }
            Console.WriteLine($"wrote a new token to {path} (0600); a server whose admin.token-file is this file takes it at its next request (a new admin.token-file needs a restart)");
            return 0;
        });
        var admin = new Command("admin", "Admin plane helpers") { token };
        return [status, sessions, sites, kick, revoke, reload, unban, admin];
    }

    private static Command Verb(string name, string description, params Option[] options)
    {
        var c = new Command(name, description) { ConfigOption, AdminOption, TokenOption, JsonOption };
        foreach (var o in options) c.Options.Add(o);
        return c;
    }

    private static async Task<int> RunAsync(ParseResult parse, Func<AdminClient, bool, Task<int>> action)
    {
        AdminClient? client;
        string? problem;
        try
        {
            client = Connect(parse, out problem);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or UriFormatException or ArgumentException)
        {
            // A token file that is missing or not readable by this user, an address that is not one.
            (client, problem) = (null, e.Message);
        }
        if (client is null)
        {
            Console.Error.WriteLine($"isotun {parse.CommandResult.Command.Name}: {problem}");
            return problem!.StartsWith("give ", StringComparison.Ordinal) ? 2 : 1;
        }
        using (client)
        {
            try
            {
                return await action(client, parse.GetValue(JsonOption));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
            {
                Console.Error.WriteLine($"isotun {parse.CommandResult.Command.Name}: cannot reach the admin API at {client.Target}: {e.Message}");
                return 1;
            }
            catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException)
            {
                // Not JSON, or not the JSON this version reads: another program on that address, or another version.
                Console.Error.WriteLine($"isotun {parse.CommandResult.Command.Name}: the answer of {client.Target} is not what this isotun expects ({e.Message})");
                return 1;
            }
        }
    }

    private static AdminClient? Connect(ParseResult parse, out string? problem)
    {
        problem = null;
        if (parse.GetValue(AdminOption) is { } target)
        {
            string? token = parse.GetValue(TokenOption) is { } f ? File.ReadAllText(f).Trim() : null;
            return new AdminClient(target, token);
        }
        if (parse.GetValue(ConfigOption) is { } config)
        {
            var client = AdminClient.FromConfig(config, out problem, out var warning);
            // A reload says every error itself (the server reads the file), so the warning would only repeat the first.
            if (warning is not null && parse.CommandResult.Command.Name != "reload")
                Console.Error.WriteLine($"isotun {parse.CommandResult.Command.Name}: warning: {warning}");
            return client;
        }
        problem = "give --config FILE (the server's config) or --admin SOCKET|URL";
        return null;
    }

    private static int Fail(AdminReply r)
    {
        Console.Error.WriteLine($"isotun: the server refused: {r.Error} (HTTP {r.Status})");
        return 1;
    }

    private static int Print(AdminReply r)
    {
        Console.WriteLine(JsonSerializer.Serialize(r.Json, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static string Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() ?? "-" : "-";

    private static string Scalar(JsonElement v) => v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : v.ToString();

    private static string Bytes(long n) => n switch
    {
        < 1024 => $"{n} B",
        < 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{n / 1024.0:0.#} KiB"),
        < 1024L * 1024 * 1024 => string.Create(CultureInfo.InvariantCulture, $"{n / (1024.0 * 1024):0.#} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{n / (1024.0 * 1024 * 1024):0.##} GiB"),
    };

    private static string Since(DateTimeOffset since)
    {
        var age = DateTimeOffset.UtcNow - since;
        return age.TotalHours >= 1 ? $"{(int)age.TotalHours}h{age.Minutes:00}m" : age.TotalMinutes >= 1 ? $"{(int)age.TotalMinutes}m{age.Seconds:00}s" : $"{(int)age.TotalSeconds}s";
    }

    private static void Table(string[] header, List<string[]> rows, string empty = "(no sessions)")
    {
        var widths = header.Select((h, i) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[i].Length))).ToArray();
        Console.WriteLine(string.Join("  ", header.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var r in rows) Console.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        if (rows.Count == 0) Console.WriteLine(empty);
    }
}
