namespace Isotun.UnitTests.Deploy;

/// <summary>The shipped units: Type=notify, a reload that fails on a refused file, and the hardening each role can live with.</summary>
public sealed class SystemdUnitTests
{
    private static Dictionary<string, string> Service(string unit)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(RepositoryRoot.File("deploy", "systemd", unit)))
        {
            if (line.StartsWith('#') || !line.Contains('=')) continue;
            var (key, value) = (line[..line.IndexOf('=')], line[(line.IndexOf('=') + 1)..]);
            bool repeatable = key is "ExecStartPre" or "ExecReload" or "Wants" or "After";
            Assert.False(settings.ContainsKey(key) && !repeatable, $"{unit}: {key} twice");
            settings[key] = settings.TryGetValue(key, out var before) && repeatable ? before + "\n" + value : value; // in order, one per line
        }
        return settings;
    }

    [Theory]
    [InlineData("isotun-server.service", "CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_ADMIN")]
    [InlineData("isotun-gateway.service", "CAP_NET_BIND_SERVICE")]
    public void Each_unit_is_a_hardened_notify_service_with_only_the_capabilities_it_needs(string unit, string capabilities)
    {
        var s = Service(unit);
        Assert.Equal("notify", s["Type"]);
        // The server's reload waits for the outcome (admin socket); the gateway's checks the file before it signals.
        Assert.Equal(unit == "isotun-server.service"
            ? "/usr/local/bin/isotun reload --config /etc/isotun/isotun.yaml"
            : "/usr/local/bin/isotun gateway --check --config /etc/isotun/gateway.yaml\n/bin/kill -HUP $MAINPID", s["ExecReload"]);
        Assert.Equal(capabilities, s["CapabilityBoundingSet"]);
        foreach (var (key, value) in new[]
        {
            ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes"),
            ("ProtectKernelModules", "yes"), ("ProtectControlGroups", "yes"), ("RestrictSUIDSGID", "yes"),
            ("LockPersonality", "yes"), ("SystemCallArchitectures", "native"),
        })
            Assert.True(s.TryGetValue(key, out var v) && v == value, $"{unit}: {key}={value} expected, found {v ?? "nothing"}");
        Assert.StartsWith("AF_UNIX AF_INET AF_INET6", s["RestrictAddressFamilies"]);
        Assert.False(s.ContainsKey("MemoryDenyWriteExecute"), "the .NET JIT needs writable code pages");
    }

    [Fact]
    public void The_server_may_write_only_its_state_and_the_namespace_names_and_open_only_the_tun_device()
    {
        var s = Service("isotun-server.service");
        // "-": /run/netns may not exist before the first start (systemd then fails the mount namespace: 226/NAMESPACE).
        Assert.Equal("/var/lib/isotun -/run/netns", s["ReadWritePaths"]);
        Assert.Equal("closed", s["DevicePolicy"]);
        Assert.Equal("/dev/net/tun rw", s["DeviceAllow"]);
        Assert.Equal("net mnt", s["RestrictNamespaces"]);
    }
}
