import { lazy, Suspense } from 'react';
import { Link, matchRoute, usePath } from './router';
import { NotificationBell, SignIn } from './components';
import { HomePage } from './pages/Home';
import { BroadcastNewPage, BroadcastPage } from './pages/Broadcast';
import { WatchPage } from './pages/Watch';
import { SchedulePage } from './pages/Schedule';
import { SettingsPage } from './pages/Settings';
import { ChannelPage } from './pages/Channel';

// The analytics pages bring uPlot: chunks of their own, loaded when opened.
const AnalyticsPage = lazy(() => import('./pages/Analytics').then((m) => ({ default: m.AnalyticsPage })));
const ChannelAnalyticsPage = lazy(() => import('./pages/ChannelAnalytics').then((m) => ({ default: m.ChannelAnalyticsPage })));

const loading = <div className="page"><p className="muted">Loading…</p></div>;

function Routes({ path }: { path: string }) {
  let m: Record<string, string> | null;
  if ((m = matchRoute('/watch/:id', path))) return <WatchPage key={m.id} id={m.id} />;
  if ((m = matchRoute('/broadcast/:id', path))) return <BroadcastPage key={m.id} id={m.id} />;
  if (matchRoute('/broadcast', path)) return <BroadcastNewPage />;
  if (matchRoute('/schedule', path)) return <SchedulePage />;
  if ((m = matchRoute('/settings/:id', path))) return <SettingsPage key={m.id} id={m.id} />;
  if ((m = matchRoute('/channel/:id/analytics', path))) {
    return (
      <Suspense fallback={loading}>
        <ChannelAnalyticsPage key={m.id} id={m.id} />
      </Suspense>
    );
  }
  if ((m = matchRoute('/channel/:id', path))) return <ChannelPage key={m.id} id={m.id} />;
  if ((m = matchRoute('/analytics/:id', path))) {
    return (
      <Suspense fallback={loading}>
        <AnalyticsPage key={m.id} id={m.id} />
      </Suspense>
    );
  }
  if (path === '/' || path === '') return <HomePage />;
  return (
    <div className="page">
      <h2>Not found</h2>
      <Link to="/">Home</Link>
    </div>
  );
}

export function App() {
  const path = usePath();
  return (
    <>
      <header className="top">
        <Link to="/" className="brand">Rill</Link>
        <nav>
          <Link to="/">Streams</Link>
          <Link to="/broadcast">Go live</Link>
          <Link to="/schedule">Schedule</Link>
        </nav>
        <NotificationBell />
        <SignIn />
      </header>
      <main>
        <Routes path={path} />
      </main>
    </>
  );
}
