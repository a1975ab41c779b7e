namespace Isotun.Linux;

/// <summary>
/// What one long-running service (the server, the gateway) tells systemd through <see cref="SystemdNotify"/>. Once it
/// said STOPPING=1 it says neither READY=1 nor RELOADING=1 again: a reload that a SIGHUP started just before the stop
/// would otherwise end with a READY=1 that says the opposite of what is happening.
/// </summary>
public sealed class ServiceNotifier
{
    private volatile bool _stopping;

    public void Ready(string status)
    {
        if (!_stopping) SystemdNotify.Ready(status);
    }

    public void Reloading()
    {
        if (!_stopping) SystemdNotify.Reloading();
    }

    public void Stopping()
    {
        _stopping = true;
        SystemdNotify.Stopping();
    }
}
