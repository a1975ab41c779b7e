using System.CommandLine;
using Isotun.Client;
using Isotun.Transport;

namespace Isotun.Cli.Commands;

/// <summary><c>isotun connect URL</c>: the client, for Isotun servers and stock ocserv.</summary>
public static class ConnectCommand
{
    public static Command Create()
    {
        var url = new Argument<string>("URL") { Description = "Server URL, e.g. https://vpn.example/ or https://vpn.example/<tenant>" };
        var user = new Option<string?>("--user", "-u") { Description = "User name" };
        var passwordFile = new Option<string?>("--password-file") { Description = "Read the password from this file (first line)" };
        var passwdStdin = new Option<bool>("--passwd-on-stdin") { Description = "Read the password from the first line of stdin" };
        var cookieStdin = new Option<bool>("--cookie-on-stdin") { Description = "Read a session cookie from stdin instead of logging in" };
        var authenticate = new Option<bool>("--authenticate") { Description = "Log in, print COOKIE=… and exit (like openconnect --authenticate)" };
        var group = new Option<string?>("--authgroup", "-g") { Description = "Group (tenant) to log into" };
        var cert = new Option<string?>("--certificate", "-c") { Description = "Client certificate (PEM)" };
        var key = new Option<string?>("--sslkey", "-k") { Description = "Client private key (PEM)" };
        var pin = new Option<string?>("--servercert") { Description = "Accept only this server certificate: pin-sha256:<base64> (see `isotun pki pin`)" };
        var ca = new Option<string?>("--cafile") { Description = "Trust server certificates issued by this CA (PEM)" };
        var tun = new Option<string>("--interface", "-i") { Description = "TUN device name", DefaultValueFactory = _ => "isotun0" };
        var noRoutes = new Option<bool>("--no-routes") { Description = "Configure the address only, no routes" };
        var reconnect = new Option<int>("--reconnect-timeout") { Description = "Give up reconnecting this many seconds after the connection was lost", DefaultValueFactory = _ => 300 };
        var forceDpd = new Option<int?>("--force-dpd")
        {
            Description = "Probe the server after at most this many seconds of silence (and leave the connection for a new one after twice that), whatever DPD the server asks (1-3600)",
        };
        var noExtensions = new Option<bool>("--no-extensions") { Description = "Plain CSTP only: do not offer Isotun's batching and GSO extensions" };
        var noOffload = new Option<bool>("--no-offload") { Description = "Open the TUN without virtio-net headers and TSO" };
        var queues = new Option<int>("--queues")
        {
            Description = $"TLS connections to join to the session as queues, each with its own TUN queue (1-{Protocol.Cstp.IsotunExtensions.MaxQueues}; the server may grant fewer; default: one per core, up to 8)",
            DefaultValueFactory = _ => ClientOptions.DefaultQueues,
        };
        var siteGateway = new Option<bool>("--site-gateway")
        {
            Description = "Act as a site's gateway: forward between the tunnel and this host's networks (IPv4 and IPv6 forwarding on, no NAT); the server routes the site's subnets to this client and pushes the routes to the tenant's other sites",
        };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Debug logging" };

        var command = new Command("connect", "Connect to a VPN server and route traffic through a TUN device")
        {
            url, user, passwordFile, passwdStdin, cookieStdin, authenticate, group, cert, key, pin, ca, tun, noRoutes, reconnect, forceDpd, noExtensions, noOffload, queues, siteGateway, verbose,
        };
        command.SetAction(async (parse, _) =>
        {
            // Before the first socket: packets are read and written by the thread the kernel woke (see IoThreads).
            IoThreads.PreferInlineCompletions();
            if (!Uri.TryCreate(parse.GetValue(url), UriKind.Absolute, out var server) || server.Scheme != "https")
            {
                Console.Error.WriteLine("isotun connect: URL must be https://host[:port][/tenant]");
                return (int)ClientExitCode.Usage;
            }
            if (parse.GetValue(queues) is < 1 or > Protocol.Cstp.IsotunExtensions.MaxQueues)
            {
                Console.Error.WriteLine($"isotun connect: --queues must be 1-{Protocol.Cstp.IsotunExtensions.MaxQueues}");
                return (int)ClientExitCode.Usage;
            }
            if (parse.GetValue(forceDpd) is < 1 or > 3600)
            {
                Console.Error.WriteLine("isotun connect: --force-dpd must be 1-3600 seconds");
                return (int)ClientExitCode.Usage;
            }
            string? password = null, cookie = null;
            try
            {
                if (parse.GetValue(passwordFile) is { } pf) password = FirstLine(File.ReadAllText(pf));
                else if (parse.GetValue(passwdStdin)) password = FirstLine(Console.In.ReadLine() ?? "");
                if (parse.GetValue(cookieStdin)) cookie = FirstLine(Console.In.ReadLine() ?? "");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"isotun connect: {e.Message}");
                return (int)ClientExitCode.Usage;
            }
            if (parse.GetValue(cookieStdin) && string.IsNullOrEmpty(cookie))
            {
                Console.Error.WriteLine("isotun connect: --cookie-on-stdin given but stdin had no cookie");
                return (int)ClientExitCode.Usage;
            }
            var options = new ClientOptions
            {
                Server = server,
                User = parse.GetValue(user),
                Password = password,
                Group = parse.GetValue(group),
                CertificateFile = parse.GetValue(cert),
                KeyFile = parse.GetValue(key),
                ServerPin = parse.GetValue(pin),
                CaFile = parse.GetValue(ca),
                Cookie = cookie,
                TunName = parse.GetValue(tun)!,
                ConfigureRoutes = !parse.GetValue(noRoutes),
                ReconnectTimeout = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(reconnect))),
                ForceDpd = parse.GetValue(forceDpd),
                Extensions = !parse.GetValue(noExtensions),
                Offload = !parse.GetValue(noOffload),
                Queues = parse.GetValue(queues),
                SiteGateway = parse.GetValue(siteGateway),
            };
            try
            {
                ClientTlsMaterial.For(options); // -c, -k and --cafile are read now: a bad one is a usage error, before any connection
            }
            catch (Exception e) when (e is Pki.PkiException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"isotun connect: {e.Message}");
                return (int)ClientExitCode.Usage;
            }
            using var signals = new Signals();
            using var logs = Logging.Create(parse, parse.GetValue(verbose));
            var log = logs.CreateLogger("isotun.client");
            try
            {
                if (parse.GetValue(authenticate))
                {
                    // Like openconnect: the cookie goes to stdout on request only, for the caller to pass on, each value
                    // quoted for a shell (`eval "$(isotun connect --authenticate …)"`).
                    var c = await AuthClient.LoginAsync(options, signals.Token);
                    Console.Out.WriteLine($"COOKIE={ShellQuoted(c)}");
                    Console.Out.WriteLine($"HOST={ShellQuoted(server.Host)}");
                    return 0;
                }
                return (int)await new VpnClient(options, log).RunAsync(signals.Token);
            }
            catch (ClientException e)
            {
                Console.Error.WriteLine($"isotun connect: {e.Message}");
                return (int)e.Code;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("isotun connect: cancelled");
                return (int)ClientExitCode.Ok;
            }
            catch (Exception e) when (e is Tun.TunException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"isotun connect: {e.Message}");
                return (int)ClientExitCode.Failure;
            }
        });
        return command;
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].TrimEnd('\r');

    /// <summary>A value in single quotes for a POSIX shell, as openconnect prints its <c>--authenticate</c> lines.</summary>
    internal static string ShellQuoted(string value) => "'" + value.Replace("'", "'\\''") + "'";
}
