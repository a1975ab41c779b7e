using System.Net;

namespace Isotun.Config;

/// <summary>Where the admin listener (Prometheus <c>GET /metrics</c>) listens; null when disabled.</summary>
public sealed record AdminConfig(IPEndPoint? Listen);
