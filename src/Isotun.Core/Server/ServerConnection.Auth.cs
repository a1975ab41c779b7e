using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Isotun.Metrics;
using Isotun.Protocol.Auth;
using Isotun.Protocol.Cookies;
using Isotun.Protocol.Cstp;
using Isotun.Protocol.Http;
using Isotun.Protocol.Ip;
using Isotun.Transport;
using Microsoft.Extensions.Logging;

namespace Isotun.Server;

/// <summary>The login phase: XML auth, bans, the login gate, session limits, the cookie.</summary>
internal sealed partial class ServerConnection
{
    private enum AuthStep { Continue, LoggedIn, Close }

    /// <summary>One auth request: go on reading requests, go on after a login (a cookie was sent), or close.</summary>
    private async Task<AuthStep> AuthAsync(Stream tls, HttpRequestHead head, byte[] body, CancellationToken ct)
    {
        var metrics = server.Metrics;
        var parsed = AuthXml.TryParseClientMessage(body, out var msg);
        if (parsed != AuthXmlResult.Ok || msg is null)
        {
            metrics.Auth("-", AuthOutcome.BadRequest);
            // The reply says "Connection: close", and so it is: a peer that sends such a body gets no second try here.
            await RefuseAsync(tls, 400, "Bad Request", $"auth body refused: {parsed}", ct).ConfigureAwait(false);
            return AuthStep.Close;
        }
        if (msg.Type == "logout")
        {
            // An XML logout ends the session its cookie names, and the cookie with it.
            if (SessionCookie.TryGet(head.Headers, out var cookie) && server.Cookies.TryOpen(cookie, out var loggedOut) == CookieOpenResult.Ok && loggedOut is not null)
            {
                if (server.Sessions.TryGet(loggedOut.SessionId) is { } session) server.Sessions.Kick(session, "logged out");
                // Written once: a cookie already revoked (logged out before, kicked) costs no write under the store's
                // lock, however often its holder logs out with it.
                else if (!server.State.IsRevoked(loggedOut.SessionId)) server.State.Revoke(loggedOut.SessionId, loggedOut.ExpiresAt);
            }
            await WriteXmlAsync(tls, 200, AuthXml.BuildComplete(), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }

        bool pathFixed = Authenticator.PathTenant(head.Target).Length > 0 || server.Authenticator.TenantForServerName(_peer.ServerName) is not null;
        string action = pathFixed ? head.Target.Split('?', 2)[0] : "/auth";
        // A source or user with too many failed logins is refused before any password is hashed.
        string? userKey = server.Authenticator.ThrottleKey(msg, head.Target, _peer, out var keyTenant);
        var source = _peer.Remote?.Address;
        // The attempt holds a place among those under way until its outcome is counted, so a burst of attempts at once
        // cannot all pass before the first failure counts.
        using var attempt = server.Logins.Begin(source, userKey);
        if (attempt.Block is var block and not LoginBlock.None)
        {
            return await RefuseLoginAsync(tls, action, "-", AuthOutcome.Throttled, LoggedName(msg.Username, keyTenant),
                block == LoginBlock.Source ? "throttled (source)" : "throttled (user)", "too many failed logins; try again later", ct).ConfigureAwait(false);
        }

        // Password hashing runs a bounded number at a time, so a storm of logins cannot starve the data path. A login
        // that hashes nothing (a certificate, or a request for the form) does not wait for the gate.
        AuthDecision decision;
        bool hashes = _peer.Certificate is null && msg.Password is not null;
        if (hashes && await server.LoginGate.EnterAsync(source, ct).ConfigureAwait(false) is var entry and not GateEntry.Entered)
        {
            return await RefuseLoginAsync(tls, action, "-", AuthOutcome.Busy, LoggedName(msg.Username, keyTenant),
                entry == GateEntry.SourceBusy ? "busy (too many logins of this source at once)" : "busy", "the server is busy; try again", ct).ConfigureAwait(false);
        }
        var decidedAt = DateTimeOffset.UtcNow; // what the checks below trust is what the tenant trusted from here on
        try
        {
            decision = hashes ? await Task.Run(() => server.Authenticator.Decide(msg, head.Target, _peer), ct).ConfigureAwait(false)
                : server.Authenticator.Decide(msg, head.Target, _peer);
        }
        finally
        {
            if (hashes) server.LoginGate.Exit(source);
        }
        string tenantLabel = decision.Tenant?.Name ?? "-";
        // A certificate names its user; a password login's name is logged only if the tenant knows it.
        string who = decision.User ?? LoggedName(msg.Username, decision.Tenant ?? keyTenant);
        if (!decision.ShowForm && !decision.Success)
        {
            var (sourceBanned, userBanned) = server.Logins.Failed(source, userKey);
            if (sourceBanned) LoginBanned(tenantLabel, BanScope.Source, source?.ToString() ?? "-");
            if (userBanned) LoginBanned(tenantLabel, BanScope.User, who);
        }
        else if (decision.Success && userKey is not null)
        {
            // A ban another node started while the password was checked holds: the attempt was not to be made.
            if (server.Logins.Check(null, userKey) == LoginBlock.User)
            {
                attempt.Dispose();
                return await RefuseLoginAsync(tls, action, tenantLabel, AuthOutcome.Throttled, who, "throttled (user)", "too many failed logins; try again later", ct).ConfigureAwait(false);
            }
            server.Logins.Succeeded(userKey);
        }
        attempt.Dispose(); // counted: its place goes back before the answer is written to a client that may read slowly
        if (decision.ShowForm)
        {
            var form = server.Authenticator.BuildForm(action, decision.Message, null, !pathFixed, decision.Tenant?.Name);
            await WriteXmlAsync(tls, 200, AuthXml.BuildAuthRequest(form), null, ct).ConfigureAwait(false);
            return AuthStep.Continue;
        }
        if (!decision.Success)
        {
            // A success is counted further down, once the session limits let it through.
            return await RefuseLoginAsync(tls, action, tenantLabel, decision.Outcome, who, decision.Outcome.ToLabel(), decision.Message, ct).ConfigureAwait(false);
        }
        var tenant = decision.Tenant!;
        if (server.IsRevoked(tenant.Name, decision.User!))
            return await RefuseLoginAsync(tls, action, tenantLabel, AuthOutcome.Revoked, decision.User!, "revoked", "this user is revoked", ct).ConfigureAwait(false);
        // The cookie carries a fingerprint of the credential checked: a removed user, a new password or a revoked certificate kills it.
        ulong credential = decision.Credential;
        // A reload narrowed whom the tenant trusts while this certificate was checked against the CAs from before: the
        // session it would make would look newer than the change, and outlive it.
        bool TrustChanged() => Security.CredentialStamp.IsCertificate(credential) && tenant.CertificatesTrustedSince > decidedAt;
        if (TrustChanged()) return await TrustChangedAsync().ConfigureAwait(false);
        var ticket = server.Sessions.TryCreate(tenant, decision.User!, server.Config.Limits.MaxSessions, out var limit, credential);
        if (ticket is null)
        {
            var why = limit == SessionLimit.User ? "too many sessions for this user" : "too many sessions for this group";
            return await RefuseLoginAsync(tls, action, tenantLabel, AuthOutcome.TooManySessions, decision.User!, why, why, ct).ConfigureAwait(false);
        }
        // And once more now that the session is made (its time is taken in TryCreate, after a wait for its lock): a
        // narrowing that came in between found no session to end, and the new one would look newer than it.
        if (TrustChanged())
        {
            if (server.Sessions.TryGet(ticket.SessionId) is { } made) server.Sessions.Kick(made, "the tenant's trusted certificates changed during the login");
            return await TrustChangedAsync().ConfigureAwait(false);
        }
        metrics.Auth(tenantLabel, AuthOutcome.Ok);
        ServerLog.Login(log, LogLevel.Information, tenantLabel, id, decision.User!, "ok");
        await WriteXmlAsync(tls, 200, AuthXml.BuildComplete(), SessionCookie.SetCookieValue(server.Cookies.Seal(ticket)), ct).ConfigureAwait(false);
        return AuthStep.LoggedIn;

        Task<AuthStep> TrustChangedAsync() => RefuseLoginAsync(tls, action, tenantLabel, AuthOutcome.BadCertificate, decision.User!,
            "the tenant's trusted certificates changed during the login", "the group's trusted certificates changed during the login; try again", ct);
    }


    /// <summary>
    /// Refuses a login: counted by <paramref name="outcome"/>, logged (throttled per outcome) with <paramref name="logged"/>,
    /// and answered 401 with <paramref name="shown"/> and a form that lists no groups: a refusal names nothing of any
    /// tenant (docs/isolation.md).
    /// </summary>
    private async Task<AuthStep> RefuseLoginAsync(Stream tls, string action, string tenantLabel, AuthOutcome outcome, string user, string logged, string shown, CancellationToken ct)
    {
        server.Metrics.Auth(tenantLabel, outcome);
        ServerLog.Login(log, Throttled("login " + outcome.ToLabel()), tenantLabel, id, user, logged);
        var form = server.Authenticator.BuildForm(action, "Login failed.", shown, false, null);
        await WriteXmlAsync(tls, 401, AuthXml.BuildAuthRequest(form with { Inputs = [] }), null, ct).ConfigureAwait(false);
        return AuthStep.Continue;
    }

    private void LoginBanned(string tenant, BanScope scope, string who)
    {
        server.Metrics.LoginBan(scope);
        ServerLog.LoginBanned(log, tenant, scope.ToLabel(), who, (int)server.Config.Limits.LoginBanTime.TotalSeconds);
    }
}
