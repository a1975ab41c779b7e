using System.Net;

namespace Isotun.Config;

/// <summary>Where the admin API (metrics, sessions, reload) listens; null when disabled.</summary>
public sealed record AdminConfig(IPEndPoint? Listen);
