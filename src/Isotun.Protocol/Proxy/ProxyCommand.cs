namespace Isotun.Protocol.Proxy;

public enum ProxyCommand : byte
{
    /// <summary>The connection was made by the proxy itself (health check); the addresses carry no meaning.</summary>
    Local = 0,

    /// <summary>The connection is relayed for a client; the addresses are the client's and the proxy's.</summary>
    Proxy = 1,
}
