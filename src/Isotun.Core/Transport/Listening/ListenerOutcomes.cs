namespace Isotun.Transport.Listening;

/// <summary>Why a listener reset a connection at accept, before it read a byte. Each role's admission uses some of these.</summary>
public enum AdmissionRefusal { GlobalCap, SourceCap, IpConcurrency, IpRate, Banned, Untrusted }

/// <summary>Why accepting failed for the whole listener, which backs off and goes on: the errno of a resource running out, or other.</summary>
public enum AcceptFailure { Emfile, Enfile, Enobufs, Enomem, Other }
