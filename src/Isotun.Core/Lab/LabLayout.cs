using System.Net;

namespace Isotun.Lab;

/// <summary>
/// Names and addresses of one lab: three namespaces (client host, server host, a service behind the
/// server) on veth underlays in 198.18.0.0/15. <paramref name="Index"/> keeps labs apart (tests run their
/// own next to a developer's).
/// </summary>
public sealed record LabLayout(string Tag, int Index, string Directory)
{
    public static LabLayout Default(string directory) => new("lab", 0, directory);

    public string ServerNs => $"isotun-{Tag}-srv";
    public string ClientNs => $"isotun-{Tag}-cli";
    public string ServiceNs => $"isotun-{Tag}-svc";
    /// <summary>The tenant's namespace, created and owned by the server (listed so `down` cleans it after a crash).</summary>
    public string TenantNs => $"isotun-{Tag}-t-{Tenant}";
    public IEnumerable<string> Namespaces => [ClientNs, ServerNs, ServiceNs, TenantNs];

    // veth names are made in the root namespace first, so they carry the tag to stay unique there.
    public string ClientUplink => $"{Tag}-c0";
    public string ServerDownlink => $"{Tag}-s0";
    /// <summary>The tenant's uplink veth: made by the server, from the tenant namespace into the service host.</summary>
    public string ServiceLink => $"{Tag}-v0";

    public IPAddress ServerIp => IPAddress.Parse($"198.18.{2 * Index}.1");
    public IPAddress ClientIp => IPAddress.Parse($"198.18.{2 * Index}.2");
    /// <summary>The tenant namespace's side of its uplink to the service host.</summary>
    public IPAddress ServerServiceIp => IPAddress.Parse($"198.18.{2 * Index + 1}.1");
    public IPAddress ServiceIp => IPAddress.Parse($"198.18.{2 * Index + 1}.2");
    public string ServiceNet => $"198.18.{2 * Index + 1}.0/24";
    public string Pool => "10.10.0.0/24";
    public string Pool6 => "fd00:10::/64";
    public IPAddress TunnelGateway => IPAddress.Parse("10.10.0.1");
    public IPAddress TunnelGateway6 => IPAddress.Parse("fd00:10::1");

    public const string Tenant = "demo";
    public const string User = "alice";
    public const string ClientTun = "isotun0";
    public const int ServicePort = 8080;
    public const int SinkPort = 9000;
    public const int AdminPort = 9410;

    public string PkiDir => Path.Combine(Directory, "pki");
    public string ConfigPath => Path.Combine(Directory, "server.yaml");
    public string PasswordFile => Path.Combine(Directory, "users.passwd");
    public string UserPasswordPath => Path.Combine(Directory, $"{User}.password");
    public string LogDir => Path.Combine(Directory, "logs");
    public string PidDir => Path.Combine(Directory, "pids");
    public string ServiceText => $"hello from tenant {Tenant}";
    public Uri ServerUrl => new($"https://{ServerIp}/");
}
