export { RillProvider, useRill, useStreamEvents, useViewerCount, useNow } from './context';
export { useLiveStream, saveIngest, loadIngest } from './useLiveStream';
export { useStreamViewer } from './useStreamViewer';
export { useStreamChat, mergeMessage } from './useStreamChat';
export { useStreamReactions } from './useStreamReactions';
export { useStreamQuestions, upsertQuestion } from './useStreamQuestions';
export { useNotifications, NOTIFICATIONS_POLL_MS } from './useNotifications';
export { useStreamAnalytics } from './useStreamAnalytics';
