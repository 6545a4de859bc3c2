import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Served by `tixian serve` under /dashboard (same origin as the /admin API it calls).
export default defineConfig({
  base: '/dashboard/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        // antd and React change rarely: their own chunk stays cached across console releases.
        manualChunks(id: string) {
          if (id.includes('node_modules/echarts') || id.includes('node_modules/zrender')) return 'charts';
          if (/node_modules\/(antd|@ant-design|@rc-component|rc-[a-z-]+)\//.test(id)) return 'antd';
          if (id.includes('node_modules/')) return 'vendor';
          return undefined;
        },
      },
    },
  },
  server: { proxy: { '/admin': 'http://127.0.0.1:3000' } },
});
