import { createRoot } from 'react-dom/client';
import { RillProvider } from '../hooks/context';
import { App } from './App';
import './styles.css';

createRoot(document.getElementById('root')!).render(
  <RillProvider>
    <App />
  </RillProvider>,
);
