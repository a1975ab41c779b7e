using Isotun.Fuzz.Targets;

namespace Isotun.Fuzz;

/// <summary>Every target, by name. A target's committed seeds live in <c>fuzz/corpus/NAME/</c>.</summary>
public static class FuzzTargets
{
    public static IReadOnlyList<IFuzzTarget> All { get; } =
    [
        new CstpTarget(),
        new HttpTarget(),
        new AuthXmlTarget(),
        new ClientHelloTarget(),
        new ProxyV2Target(),
        new IpTarget(),
        new GsoTarget(),
        new TcpCoalescerTarget(),
        new CookieTarget(),
        new ServerConfigTarget(),
        new GatewayConfigTarget(),
    ];

    public static IFuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}
