using System.Text.RegularExpressions;

namespace Isotun.UnitTests.Core;

/// <summary>
/// The dependency rule of docs/architecture.md, read from the sources (so a call inside a method body counts, not only
/// a signature): Protocol uses nothing of ours; Transport and Tun do not use Linux or any role; Client does not use
/// Server, Gateway or Config; no role uses another role; State (the stores and the address-block allocator) uses no
/// role, no kernel I/O and no config.
/// </summary>
public sealed partial class DependencyRuleTests
{
    private static readonly string Root = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Isotun.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("cannot find the repository root");
    }

    public static TheoryData<string, string[]> Rules() => new()
    {
        { "src/Isotun.Protocol", ["Config", "Linux", "Transport", "Tun", "Server", "Client", "Gateway", "Lab", "Doctor", "Metrics", "State", "Pki", "Security", "Logs"] },
        { "src/Isotun.Core/Transport", ["Linux", "Server", "Client", "Gateway", "Lab", "Doctor", "Config"] },
        { "src/Isotun.Core/Tun", ["Linux", "Transport", "Server", "Client", "Gateway", "Lab", "Doctor", "Config"] },
        { "src/Isotun.Core/Client", ["Server", "Gateway", "Config", "Lab", "Doctor"] },
        { "src/Isotun.Core/Server", ["Client", "Gateway", "Lab", "Doctor"] },
        { "src/Isotun.Core/Gateway", ["Client", "Server", "Lab", "Doctor"] },
        { "src/Isotun.Core/State", ["Linux", "Transport", "Tun", "Server", "Client", "Gateway", "Lab", "Doctor", "Config"] },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public void A_layer_uses_nothing_it_must_not(string folder, string[] forbidden)
    {
        var offenders = new List<string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Root, folder), "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains("/obj/") || file.Contains("/bin/")) continue;
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                var code = StripComment(lines[i]);
                foreach (var ns in forbidden)
                    if (Uses(code, ns)) offenders.Add($"{Path.GetRelativePath(Root, file)}:{i + 1} uses {ns}: {lines[i].Trim()}");
            }
        }
        Assert.Empty(offenders);
    }

    [Fact]
    public void What_the_server_runs_knows_its_host_by_an_interface_not_the_server_itself()
    {
        // Connections, the PROXY listener and the cluster's publisher take IConnectionHost: VpnServer creates them, and
        // none of them names it back.
        var offenders = Directory.EnumerateFiles(Path.Combine(Root, "src/Isotun.Core/Server"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains("/obj/") && Path.GetFileName(f) != "VpnServer.cs")
            .SelectMany(f => File.ReadAllLines(f).Select((line, i) => (File: f, Line: i + 1, Code: StripComment(line))))
            .Where(x => Regex.IsMatch(x.Code, @"\bVpnServer\b"))
            .Select(x => $"{Path.GetRelativePath(Root, x.File)}:{x.Line}: {x.Code.Trim()}")
            .ToList();
        Assert.Empty(offenders);
    }

    public static TheoryData<string, string[]> TypeRules() => new()
    {
        // A tenant holds its sessions as TenantSession and their connections as Downlink: it knows neither the login's
        // session nor the connection's reading half, which both name the tenant.
        { "TenantRuntime.cs", ["VpnSession", "TunnelConnection", "SessionRegistry"] },
        { "TenantSession.cs", ["VpnSession", "TenantRuntime", "TunnelConnection"] },
        { "Site.cs", ["VpnSession", "TunnelConnection"] },
        { "SiteTable.cs", ["VpnSession", "TunnelConnection"] },
        // A session holds its connections as Downlink; the connection names its session, not the other way round.
        { "VpnSession.cs", ["TunnelConnection"] },
        { "Downlink.cs", ["TunnelConnection", "VpnSession", "TenantRuntime"] },
    };

    [Theory]
    [MemberData(nameof(TypeRules))]
    public void The_tenant_session_and_connection_depend_one_way(string file, string[] forbidden)
    {
        var path = Path.Combine(Root, "src/Isotun.Core/Server", file);
        var offenders = File.ReadAllLines(path)
            .Select((line, i) => (Line: i + 1, Code: StripComment(line)))
            .SelectMany(x => forbidden.Where(type => Regex.IsMatch(x.Code, $@"\b{type}\b")).Select(type => $"{file}:{x.Line} names {type}: {x.Code.Trim()}"))
            .ToList();
        Assert.Empty(offenders);
    }

    [Fact]
    public void The_protocol_project_references_no_other_project()
    {
        var project = File.ReadAllText(Path.Combine(Root, "src/Isotun.Protocol/Isotun.Protocol.csproj"));
        Assert.DoesNotContain("ProjectReference", project);
    }

    [Fact]
    public void The_check_sees_a_reference_inside_a_method_body()
    {
        Assert.True(Uses("    public bool MorePending => Server.ServerConnection.BytesWaiting(_socket);", "Server"));
        Assert.True(Uses("using Isotun.Config;", "Config"));
        Assert.True(Uses("var x = Isotun.Linux.Libc.geteuid();", "Linux"));
        Assert.False(Uses("var host = options.Server.IdnHost;", "Server")); // a property named Server
        Assert.False(Uses("namespace Isotun.Client;", "Server"));
    }

    private static bool Uses(string code, string ns) =>
        code.StartsWith($"using Isotun.{ns};", StringComparison.Ordinal) || code.StartsWith($"using Isotun.{ns}.", StringComparison.Ordinal)
        || Qualified(ns).IsMatch(code);

    private static Regex Qualified(string ns) => new($@"(?<![\w.])(Isotun\.)?{ns}\.[A-Z]\w*\.?");

    private static string StripComment(string line)
    {
        int i = line.IndexOf("//", StringComparison.Ordinal);
        return (i >= 0 ? line[..i] : line).Replace("\"", " ");
    }
}
