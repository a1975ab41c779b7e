using System.Net;
using Isotun.Integration.Infrastructure;
using Isotun.Lab;

namespace Isotun.Integration.DataPath;

/// <summary>
/// A second session of the lab user, from `isotun connect` on a TUN of its own and without routes. A source rule
/// sends its address's traffic to the service through its own TUN, so the lab client's tunnel is not used.
/// Disposing stops the process and removes the rule.
/// </summary>
internal sealed class SideClient : IDisposable
{
    private readonly LabLayout _lab;
    private readonly string _table;

    public SideClient(LabLayout lab, string pin, string name, string dev, string table, params string[] args)
    {
        _lab = lab;
        _table = table;
        Name = name;
        Device = dev;
        LabProcess.Start(lab, name, lab.ClientNs, TestEnvironment.IsotunExe,
            ["connect", lab.ServerUrl.ToString(), "--user", LabLayout.User, "--password-file", lab.UserPasswordPath, "--servercert", pin,
             "--interface", dev, "--no-routes", .. args]);
        try
        {
            IPAddress? address = null;
            Assert.True(Eventually.Until(TimeSpan.FromSeconds(60), () => (address = DataPathTests.AddressOf(lab, dev)) is not null),
                $"{name} never got an address:\n" + LabProcess.Tail(lab, name));
            Address = address!;
            Assert.True(Run.InNs(lab.ClientNs, "ip", "rule", "add", "from", Address.ToString(), "lookup", table, "priority", table).ExitCode == 0);
            Assert.True(Run.InNs(lab.ClientNs, "ip", "route", "replace", lab.ServiceNet, "dev", dev, "table", table).ExitCode == 0);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name { get; }
    public string Device { get; }
    public IPAddress Address { get; } = IPAddress.None;

    public string[] LogLines() => File.ReadAllLines(LabProcess.LogPath(_lab, Name));

    public int Count(string text) => LogLines().Count(l => l.Contains(text));

    public string Tail() => LabProcess.Tail(_lab, Name);

    public void Dispose()
    {
        LabProcess.Stop(_lab, Name, TimeSpan.FromSeconds(10));
        if (!Address.Equals(IPAddress.None))
            Run.InNs(_lab.ClientNs, "ip", "rule", "del", "from", Address.ToString(), "lookup", _table, "priority", _table);
    }
}
